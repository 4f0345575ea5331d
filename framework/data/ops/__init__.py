"""Preprocessing ops, registered in `framework.registry.PREPROCESS_OPS` (imported by
`framework.data`). Use them in `config.data.<split>.preprocess` (per example) and
`config.data.<split>.batch_preprocess` (per batch) as "op1(k=v)|op2|..." with Python literals;
see `framework.data.preprocess`. `size` is an int (square) or (height, width). Spatial ops
work on the example's "video" (T, H, W, C) if it has one, else on "image" (H, W, C); `key`
picks another. Resizing, cropping and RandAugment keep uint8; `value_range` / `normalize`
turn pixels into float32 and come last.

Video (records from `tools/prepare_dataset.py videos`: "frames" = list of JPEG bytes,
"timestamps" float32 (T,) seconds, "label"):
  sample_frames(num_frames, stride=1)   train: a random window of num_frames frames, stride
                                        apart (loops short videos); also "frames" arrays.
  sample_clips(num_frames, stride=1, num_clips=1)
                                        eval, multi-view: num_clips evenly spaced windows
                                        (one is centred); view digit = clip.
  decode_frames                         "frames" JPEG list -> "video" uint8 (T, H, W, 3).
  three_crop(size)                      eval, multi-view: 3 crops along the long side
                                        (start, centre, end); view digit = crop.
Image (records from `prepare_dataset.py images` / `image_text`: "image" = JPEG/PNG bytes):
  decode_image                          "image" bytes -> uint8 (H, W, 3) RGB.
  inception_crop(size, area_min=0.08, area_max=1.0, aspect_min=0.75, aspect_max=4/3)
                                        random-resized crop (one box for all frames).
  randaugment(num_layers=2, magnitude=10)
                                        RandAugment on uint8 pixels (same ops per frame).
  color_augment(p=0.8, grey_p=0.0)      brightness / saturation / contrast / hue jitter
                                        with probability p, grey with probability grey_p
                                        (one draw per video); before value_range.
Both:
  resize_small(size)                    resize so that the short side is `size` (int).
  resize(size)                          resize to `size`.
  scale_jitter(min_factor=0.9, max_factor=1.33)
                                        resize by one random factor in [min, max].
  random_crop(size)  center_crop(size)  crop `size` (randomly / centred).
  scale_jitter_crop(size, min_factor=0.9, max_factor=1.33)
                                        scale_jitter then random_crop, fused: resizes only
                                        the cropped window (about 3x cheaper).
  flip_lr(p=0.5)                        horizontal flip with probability p.
  value_range(vmin=-1.0, vmax=1.0)      uint8 0..255 -> float32 in [vmin, vmax].
  normalize(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
                                        uint8 -> float32 (x / 255 - mean) / std.
  keep(keys)  drop(keys)                keep only / remove the named keys.
Batch ops (batch_preprocess; labels become soft targets float32 (B, num_classes); num_classes
comes from the dataset):
  mixup(alpha=0.2)                      mix each example with the next one, weight ~ Beta.
  cutmix(alpha=1.0)                     paste a box of the next example, area ~ Beta.

Examples (Kinetics, ViViT): train
  "sample_frames(32, stride=2)|decode_frames|resize_small(256)|scale_jitter(0.9, 1.33)|"
  "random_crop(224)|flip_lr|value_range(-1, 1)" (or "...|scale_jitter_crop(224, 0.9, 1.33)|...")
eval (4 clips x 3 crops = 12 views per video, with evaluator "multiview_classification"):
  "sample_clips(32, stride=2, num_clips=4)|decode_frames|resize_small(256)|three_crop(224)|"
  "value_range(-1, 1)"
ImageNet: "decode_image|inception_crop(224)|flip_lr|randaugment(2, 15)|value_range(-1, 1)"
and "decode_image|resize_small(256)|center_crop(224)|value_range(-1, 1)".
Image-text records ("image" bytes, "caption" str): "decode_image|resize(224)|value_range(-1, 1)|
tokenize(64, model='DIR/sentencepiece_32000.model', inkey='caption')" (tokenize: the image-text
ops in framework/data/tokenizers.py).
"""

from framework.data.ops import batch, color, image, spatial, video  # noqa: F401  (register ops)
