"""Seeds from a Hugging Face Hub dataset id (`seeds.source: hub`), read through `datasets.load_dataset`.

`seeds.path` is the dataset id ("rajpurkar/squad_v2") or anything else `load_dataset` accepts (a local
dataset folder with data files); `seeds.split` picks the split ("train" unless set) and
`seeds.subset` the configuration of a multi-config dataset. The field mapping works as for every
file source. `load_dataset` caches what it downloads, so a second run works offline; without the
network and without a cached copy the error says so in one line, with the way around it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ctxsynth.seeds.config import SeedsConfig
from ctxsynth.seeds.rows import Row
from ctxsynth.seeds.sources import Candidate, Location, SeedError

log = logging.getLogger(__name__)

OFFLINE_FIX = ("run once with network access (datasets caches the download), or download it elsewhere "
               "with `datasets.load_dataset(...).save_to_disk(DIR)` and use seeds.source=hf_disk seeds.path=DIR")


def load_hub_dataset(dataset_id: str, split: str | None, subset: str | None) -> Any:
    """The split of a Hub (or local) dataset; every failure is a SeedError naming the id and the fix."""
    try:
        import datasets
        from datasets.exceptions import DatasetNotFoundError
    except ImportError:
        raise SeedError("seeds.source 'hub' needs the datasets package: pip install 'ctxsynth[hf]'") from None
    split = split or "train"
    log.info("loading seeds from %s (subset %s, split %s) with datasets.load_dataset", dataset_id, subset, split)
    try:
        return datasets.load_dataset(dataset_id, subset, split=split)
    except DatasetNotFoundError as e:
        raise SeedError(f"seeds.path: no dataset {dataset_id!r} on the Hub or on disk ({e}); check the id") from None
    except ConnectionError as e:  # no network and nothing cached (also HF_HUB_OFFLINE=1)
        raise SeedError(f"seeds.path: cannot reach the Hugging Face Hub for {dataset_id!r} and it is not "
                        f"cached ({e}); {OFFLINE_FIX}") from None
    except ValueError as e:  # unknown split or subset: datasets names the valid ones
        raise SeedError(f"seeds: dataset {dataset_id!r}: {e}; set seeds.split / seeds.subset") from None


def hub_rows(dataset_id: str, split: str | None, subset: str | None) -> Iterator[Row]:
    dataset = load_hub_dataset(dataset_id, split, subset)
    if len(dataset) == 0:
        raise SeedError(f"{dataset_id}: split {split or 'train'!r} has no rows")
    label = f"{dataset_id}[{split or 'train'}]"
    for number, data in enumerate(dataset, start=1):
        yield Row(Location(label, number, "row"), data=dict(data))


def hub_source(config: SeedsConfig, base_dir: Path | None) -> Iterator[Candidate]:
    from ctxsynth.seeds.readers import candidates

    dataset_id = str(config.path)
    local = Path(dataset_id).expanduser()
    if base_dir is not None and not local.is_absolute() and (base_dir / local).exists():
        dataset_id = str(base_dir / local)  # a local dataset folder, relative to the config
    return candidates(hub_rows(dataset_id, config.split, config.subset), config)
