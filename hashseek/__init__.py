"""hashseek: content-based image retrieval with deep hashing."""
import os

# OpenMP threads (torch's) that wait by sleeping, not spinning: on a shared 2-core machine a spinning
# second thread made a fine-tuning step 12x slower (6.6 s against 0.53 s an image, EfficientNet-Lite1 at
# 128 px, load average 20). Read once, when torch loads its OpenMP runtime: set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
