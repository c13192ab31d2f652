"""`hashseek calibrate`: fit a trained model's classifier temperature on its validation images, in place."""
from __future__ import annotations

import json
import math
from pathlib import Path

from hashseek.core.errors import InvalidInputError


def cmd_calibrate(args) -> int:
    from hashseek.data.protocols import Protocol
    from hashseek.eval.source_runs import load_run_split, reopen
    from hashseek.models.hash_model import load_model
    from hashseek.train.calibrate import calibrate, save_calibration

    model = load_model(args.model)
    protocol = Protocol.load(args.split) if args.split else load_run_split(args.model, model)
    if not protocol.validation:
        raise InvalidInputError(f"the split of {args.model} has no validation images to fit a temperature on; "
                                "pass --split with a saved split that has them (`hashseek split`)")
    previous = model.classifier_temperature
    record = calibrate(model, reopen(protocol), protocol.validation, progress=not args.quiet)
    save_calibration(model, args.model)
    if args.json:
        print(json.dumps(record, indent=2))
    elif "note" in record:
        print(f"{args.model}: temperature {record['temperature']:.4g} kept ({record['note']})")
    else:
        before, after = record["validation_before"], record["validation_after"]
        print(f"{args.model}: classifier temperature {record['temperature']:.4g}, fitted on {record['fitted_on']}: "
              f"mean confidence {before['confidence']:.3f} -> {after['confidence']:.3f} at accuracy "
              f"{after['accuracy']:.3f}, expected calibration error {before['ece']:.3f} -> {after['ece']:.3f}")
        if after["accuracy"] == 1.0 and "confidence_ceiling" in record:
            print(f"every validation image right: the confidence is held at {record['confidence_ceiling']:.3f}, "
                  "Laplace's estimate of the accuracy ((right + 1) / (images + 2)), not at 1")
        if math.isclose(record["temperature"], previous, rel_tol=1e-3):
            print("the temperature did not change: collections built with this model need nothing")
        else:
            print("collections keep the model they were built with: `hashseek reindex COLLECTION --model "
                  f"{args.model}` gives one these probabilities (at once: its codes stay, no image is encoded again)")
    return 0


def register(sub) -> None:
    p = sub.add_parser("calibrate", help="fit a trained model's classifier temperature on its validation images, so "
                                         "its probabilities mean what they say (trained models do this at the end; "
                                         "for one saved before; codes and rankings do not change)")
    p.add_argument("model", type=Path, help="a trained model's run folder")
    p.add_argument("--split", type=Path, help="a saved split (.json.gz) whose validation images to use "
                                              "(default: the split saved with the model)")
    p.add_argument("--json", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_calibrate)
