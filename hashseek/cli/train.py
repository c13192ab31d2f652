"""`hashseek train`: train a hashing model on a protocol's training split, then evaluate it."""
from __future__ import annotations

import json
from pathlib import Path


def train_config(args):
    """The parsed flags -> a TrainConfig; SeedAugment settings not given keep SeedAugment's defaults."""
    from hashseek.train import TrainConfig

    augment = {"min_crop_fraction": args.min_crop, "max_degrees": args.max_degrees, "crop_shape": args.crop_shape,
               "mirror": False if args.no_mirror else None}
    return TrainConfig(backbone=args.backbone, head=args.head, loss=args.loss, bits=args.bits, mode=args.mode,
                       epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
                       augment_copies=args.augment_copies, augment=not args.no_augment,
                       input_size=args.input_size, warmup_epochs=args.warmup_epochs,
                       backbone_lr_scale=args.backbone_lr_scale, mirror_average=args.mirror_average, seed=args.seed,
                       device=args.device, schedule=args.schedule, weight_decay=args.weight_decay,
                       augment_kwargs={k: v for k, v in augment.items() if v is not None})


def cmd_train(args) -> int:
    from hashseek.data.named import load_dataset
    from hashseek.data.protocols import get_protocol, protocol_dataset
    from hashseek.eval.evaluate import evaluate_model
    from hashseek.train import Trainer

    protocol_name = args.protocol or args.dataset
    dataset = load_dataset(protocol_dataset(protocol_name))
    protocol = get_protocol(protocol_name, dataset, seed=args.seed)
    config = train_config(args)
    out = args.out or Path("runs") / f"{protocol_name}-{args.backbone}-{args.head}-{args.loss}-{args.bits}b-{args.mode}"
    result = Trainer(config).fit(dataset, protocol.train, out_dir=out, resume=args.resume,
                                 dataset_name=dataset.name, protocol=protocol.name)
    print(f"trained in {result.seconds:.1f} s; final loss {result.history[-1]['loss']:.4f}; checkpoint {out}")
    if not args.no_eval:
        report = evaluate_model(result.model, dataset, protocol)
        (Path(out) / "eval.json").write_text(json.dumps(report, indent=2))
        print(f"{protocol.name}: mAP@all {report['map_all']:.4f}  P@20 {report['precision_at_20']:.4f}  "
              f"top-8 vote accuracy {report['vote_accuracy_top8']:.4f}")
    return 0


def register(sub) -> None:
    from hashseek.losses import list_losses
    from hashseek.models.heads import list_heads

    p = sub.add_parser("train", help="train a deep hashing model (frozen features or fine-tuning)")
    p.add_argument("--dataset", default="cars-bmw13", help="named dataset; its protocol gives the training split")
    p.add_argument("--protocol", help="protocol name (default: the dataset's)")
    p.add_argument("--backbone", default="efficientnet_lite0")
    p.add_argument("--head", default="gap", choices=list_heads())
    p.add_argument("--loss", default="hashnet", choices=list_losses())
    p.add_argument("--bits", type=int, default=64)
    p.add_argument("--mode", default="frozen", choices=["frozen", "finetune"])
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--optimizer", default="adam", choices=["adam", "sgd"])
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--augment-copies", type=int, default=0, help="frozen mode: seed-augmented copies per image")
    p.add_argument("--no-augment", action="store_true", help="fine-tuning without the seed augmentation")
    p.add_argument("--min-crop", type=float,
                   help="seed augmentation: smallest crop, as a fraction of each side (square crops: of the shorter "
                        "side; default 0.5)")
    p.add_argument("--max-degrees", type=float, help="seed augmentation: largest rotation (default 30)")
    p.add_argument("--crop-shape", choices=["image", "square"],
                   help="seed augmentation: crops with the image's own aspect ratio, which match the squashed whole "
                        "image that encoding sees (default), or the vehicle paper's square crops")
    p.add_argument("--no-mirror", action="store_true",
                   help="seed augmentation without the left-right mirror (text, digits, asymmetric layouts)")
    p.add_argument("--mirror-average", action="store_true",
                   help="the saved model encodes each image with its left-right mirror, averaged (2x encode time)")
    p.add_argument("--input-size", type=int, help="fine-tuning input size (reduced resolution on CPU)")
    p.add_argument("--warmup-epochs", type=int, default=0,
                   help="fine-tuning: first train the head alone on frozen maps for this many epochs")
    p.add_argument("--backbone-lr-scale", type=float, default=0.1,
                   help="fine-tuning: the backbone's learning rate is --lr times this")
    p.add_argument("--schedule", default="cosine", choices=["cosine", "step", "constant"])
    p.add_argument("--weight-decay", type=float, default=1e-5)
    p.add_argument("--device", default="auto", help="auto (CUDA when there is one), cpu, cuda or cuda:N")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="checkpoint folder (default runs/<protocol>-<backbone>-<head>-...)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    p.add_argument("--no-eval", action="store_true")
    p.set_defaults(func=cmd_train)
