from hashseek.search.collection import AddReport, CheckReport, Collection, Record  # noqa: F401
from hashseek.search.engine import Classification, SearchHit, SearchResult  # noqa: F401
from hashseek.core.hasher import load_image_hasher  # noqa: F401
from hashseek.search.feature_hasher import FeatureHasher  # noqa: F401
