"""TFDS ArrayRecord builders for the OCT and chest X-ray sets (``python -m launch.prepare``).

Decoding 2,000-pixel chest films every epoch costs more than the model on a CPU host. A build
stores each image once, grey, resized so its shorter side is ``short_side`` (default 342 =
299 / 0.875, enough for Inception-V3's crop) and re-encoded, in ArrayRecord files (random
access, no TensorFlow needed). Reading a build back is ``data_pipelines.prepared``.

Output: ``DATA_DIR/kermany_oct/short342/1.0.0/`` (TFDS files) + ``records.json`` there: per
split, the examples in storage order with their original relative path, class folder,
patient and the SHA-256 of the original file.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from data_pipelines.datasets import OCT_CLASSES
from data_pipelines.integrity import BadImageError, check_on_bad_image, report_skipped
from data_pipelines.leakage import content_hash
from data_pipelines.prepared import RECORDS_FILE
from data_pipelines.preprocess import decode, to_channels
from data_pipelines.records import ImageSource
from data_pipelines.sources import open_splits

log = logging.getLogger(__name__)

DEFAULT_SHORT_SIDE = 342
VERSION = "1.0.0"
CITATION = (
    'Kermany, Daniel; Zhang, Kang; Goldbaum, Michael (2018), "Labeled Optical Coherence '
    'Tomography (OCT) and Chest X-Ray Images for Classification", Mendeley Data, v2, '
    "doi:10.17632/rscbjbr9sj.2. Licence: CC BY 4.0."
)


@dataclasses.dataclass
class PreparedConfig(tfds.core.BuilderConfig):
    """``short_side``: shorter side of the stored images; ``image_format``: jpeg | png."""

    short_side: int = DEFAULT_SHORT_SIDE
    image_format: str = "jpeg"
    jpeg_quality: int = 95
    on_bad_image: str = "error"


def resize_encode(path: str, short_side: int, image_format: str, quality: int) -> bytes:
    """The file decoded (reduced-size when big), shorter side -> ``short_side``, re-encoded.

    Images already smaller are kept at their size (never upsampled). Stored grey: both
    modalities are greyscale (the few RGB chest files hold identical channels).
    """
    img = to_channels(decode(path, min_short_side=short_side, grey=True), 1)
    scale = short_side / min(img.size)
    if scale < 1.0:
        size = (max(1, round(img.size[0] * scale)), max(1, round(img.size[1] * scale)))
        img = img.resize(size, Image.Resampling.BICUBIC, reducing_gap=3.0)
    out = io.BytesIO()
    if image_format == "png":
        img.save(out, format="PNG", compress_level=1)
    else:
        img.save(out, format="JPEG", quality=quality)
    return out.getvalue()


# Not registered in TFDS's global name table: they are used by class (BUILDERS), and a second
# import of this module (a reloaded module, a test importing each module afresh) would collide.
class _KermanyBuild(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Shared builder: the split folders of the manual dir -> ArrayRecord, pre-resized."""

    VERSION = tfds.core.Version(VERSION)
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Unpack the Kermany et al. archive (Mendeley Data doi:10.17632/rscbjbr9sj.2, or the "
        "Kaggle re-split) and pass its folder as --manual_dir."
    )
    # TFDS looks for a checksums file beside the builder's code through importlib_resources,
    # which is not installed here; we download nothing, so there is no code path to search.
    code_path = None
    DATASET = ""  # our data-set name, set by subclasses
    CLASS_FOLDERS: tuple[str, ...] = ()

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=f"Kermany et al. (2018) {self.DATASET} images, shorter side "
            f"{self.builder_config.short_side} px.",
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(
                        shape=(None, None, 1), encoding_format=self.builder_config.image_format
                    ),
                    "label": tfds.features.ClassLabel(names=list(self.CLASS_FOLDERS)),
                    "path": tfds.features.Text(),
                    "patient": tfds.features.Text(),
                    "sha256": tfds.features.Text(),
                }
            ),
            disable_shuffling=True,
            citation=CITATION,
            license="CC BY 4.0",
            homepage="https://doi.org/10.17632/rscbjbr9sj.2",
        )

    def _split_generators(self, dl_manager: Any) -> dict[str, Any]:
        splits = open_splits(
            self.DATASET,
            data_dir=dl_manager.manual_dir,
            on_bad_image=self.builder_config.on_bad_image,
        )
        return {name: self._generate_examples(source) for name, source in splits.items()}

    def _generate_examples(self, source: ImageSource):
        cfg = self.builder_config
        root = Path(source.root)
        skipped: list[tuple[str, str]] = []
        for i, record in enumerate(source.records):
            try:
                data = resize_encode(
                    record.path, cfg.short_side, cfg.image_format, cfg.jpeg_quality
                )
            except BadImageError as err:
                if cfg.on_bad_image != "skip":
                    raise
                skipped.append((err.path, err.problem))
                continue
            if i % 500 == 0:
                log.info("%s/%s: %d / %d", self.DATASET, source.split, i, len(source))
            yield (
                f"{i:08d}",
                {
                    "image": data,
                    "label": source.class_names[record.label],
                    "path": Path(record.path).relative_to(root).as_posix(),
                    "patient": record.patient,
                    "sha256": content_hash(source, record),
                },
            )
        report_skipped(skipped, f"prepare {self.DATASET}/{source.split}")


class KermanyOct(_KermanyBuild, skip_registration=True):
    """OCT: CNV / DME / DRUSEN / NORMAL."""

    DATASET = "oct"
    CLASS_FOLDERS = OCT_CLASSES


class KermanyChestXray(_KermanyBuild, skip_registration=True):
    """Chest X-ray: NORMAL / PNEUMONIA (pathogen kept in the stored file names)."""

    DATASET = "chest_xray"
    CLASS_FOLDERS = ("NORMAL", "PNEUMONIA")


BUILDERS = {"oct": KermanyOct, "chest_xray": KermanyChestXray}


def prepare(
    dataset: str,
    manual_dir: str | Path,
    data_dir: str | Path,
    *,
    short_side: int = DEFAULT_SHORT_SIDE,
    image_format: str = "jpeg",
    on_bad_image: str = "error",
) -> Path:
    """Build ``dataset`` ("oct" | "chest_xray") from ``manual_dir`` into ``data_dir``.

    Returns the build folder (which also gets ``records.json``).
    """
    if dataset not in BUILDERS:
        raise ValueError(f"no TFDS build for {dataset!r}; expected one of {tuple(BUILDERS)}")
    check_on_bad_image(on_bad_image)
    if image_format not in ("jpeg", "png"):
        raise ValueError(f"image_format must be jpeg or png, got {image_format!r}")
    config = PreparedConfig(
        name=f"short{short_side}",
        short_side=short_side,
        image_format=image_format,
        on_bad_image=on_bad_image,
    )
    builder = BUILDERS[dataset](config=config, data_dir=str(data_dir), file_format="array_record")
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir))
    )
    build_dir = Path(builder.data_dir)
    _write_records(build_dir)
    return build_dir


def _write_records(build_dir: Path) -> None:
    """Read the build back once: per split, (path, class, patient, sha256) in storage order."""
    builder = tfds.builder_from_directory(build_dir)
    index = {}
    for split in builder.info.splits:
        source = builder.as_data_source(split=split, decoders={"image": tfds.decode.SkipDecoding()})
        names = builder.info.features["label"].names
        index[split] = [
            [_text(e["path"]), names[int(e["label"])], _text(e["patient"]), _text(e["sha256"])]
            for e in (source[i] for i in range(len(source)))
        ]
    (build_dir / RECORDS_FILE).write_text(json.dumps({"version": 1, "splits": index}))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, (bytes, np.bytes_)) else str(value)
