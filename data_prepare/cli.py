"""``python -m data_prepare <verb> --input ... --output ... [--seed] [--split]`` (python-fire).

Each verb is a thin call into the module that owns the dataset; imports are lazy so that ``--help`` is fast.
Converters print a one-line JSON summary (read / written / dropped per reason) on stdout; logs go to stderr.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _report(summary: dict[str, Any]) -> None:
    compact = {k: v for k, v in summary.items() if k != "examples"}
    print(json.dumps(compact, ensure_ascii=False))


def _report_split(result: dict[str, Any]) -> None:
    for summary in (result["train"], result["test"]):
        if summary is not None:
            _report(summary)


class DataPrepareCLI:
    """Turn public medical datasets into VILA-M3 conversation records, validate record files, write mixtures."""

    def radvqa(
        self, input: str, output: str, split: str = "train", image_root: str | None = None, seed: int = 0
    ) -> None:
        """VQA-RAD JSON -> records; split: train | test (closed, the benchmark) | test_all."""
        from data_prepare.radvqa import convert_radvqa

        _report(convert_radvqa(input, output, split=split, image_root=image_root, seed=seed))

    def slake(self, input: str, output: str, split: str = "train", seed: int = 0) -> None:
        """SLAKE folder -> English records; split: train (train+validate) | test."""
        from data_prepare.slake import convert_slake

        _report(convert_slake(input, output, split=split, seed=seed))

    def pathvqa(
        self,
        input: str,
        output: str,
        split: str = "train",
        image_dir: str | None = None,
        image_root: str | None = None,
        seed: int = 0,
    ) -> None:
        """PathVQA -> records: a folder of HF parquet shards (images written to image_dir) or a UCSD .pkl file
        (ids = question_id; image_root = the release's images folder)."""
        if Path(input).suffix == ".pkl":
            from data_prepare.pathvqa import convert_pathvqa_pickle

            _report(convert_pathvqa_pickle(input, output, image_root=image_root, split=split, seed=seed))
        else:
            from data_prepare.pathvqa import convert_pathvqa_parquet

            _report(convert_pathvqa_parquet(input, output, split=split, image_dir=image_dir, seed=seed))

    def mimic_vqa(
        self,
        input: str,
        output: str,
        split: str = "train",
        metadata: str | None = None,
        image_root: str | None = None,
        expert_predictions: str | None = None,
        seed: int = 0,
    ) -> None:
        """Medical-Diff-VQA question CSV -> one record per question (optional CXR expert line)."""
        from data_prepare.mimic_vqa import convert_mimic_vqa

        _report(
            convert_mimic_vqa(
                input,
                output,
                split=split,
                metadata=metadata,
                image_root=image_root,
                expert_predictions=expert_predictions,
                seed=seed,
            )
        )

    def mimic_reports(
        self,
        input: str,
        output: str,
        split: str = "train",
        per: str = "image",
        frontal_only: bool = False,
        metadata: str | None = None,
        image_root: str | None = None,
        rewrite_url: str | None = None,
        rewrite_model: str | None = None,
        sentence_pool: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        seed: int = 0,
    ) -> None:
        """MIMIC-CXR R2Gen/DCL annotation JSON -> report records (optional LLM rewriting, off by default)."""
        from data_prepare.reports import convert_mimic_reports

        _report(
            convert_mimic_reports(
                input,
                output,
                split=split,
                per=per,
                frontal_only=frontal_only,
                metadata=metadata,
                image_root=image_root,
                rewrite_url=rewrite_url,
                rewrite_model=rewrite_model,
                sentence_pool=sentence_pool,
                api_key_env=api_key_env,
                seed=seed,
            )
        )

    def report_sentence_pool(
        self,
        input: str,
        output: str,
        rewrite_url: str,
        rewrite_model: str,
        split: str = "train",
        chunk_size: int = 100,
        api_key_env: str = "OPENAI_API_KEY",
        seed: int = 0,
    ) -> None:
        """Build the standard-sentence pool for report rewriting with an OpenAI-compatible endpoint."""
        from data_prepare.reports import report_sentence_pool

        _report(
            report_sentence_pool(
                input,
                output,
                rewrite_url,
                rewrite_model,
                split=split,
                chunk_size=chunk_size,
                api_key_env=api_key_env,
                seed=seed,
            )
        )

    def iu_xray(
        self,
        output: str,
        input: str | None = None,
        per: str = "study",
        image_ext: str = "png",
        image_root: str | None = None,
        seed: int = 0,
    ) -> None:
        """IU X-ray NLMCXR XML reports (default: the tgz shipped with torchxrayvision) -> report records."""
        from data_prepare.reports import convert_iu_xray

        _report(convert_iu_xray(input, output, per=per, image_ext=image_ext, image_root=image_root, seed=seed))

    def chestxray14(
        self,
        output: str,
        input: str | None = None,
        split: str = "test",
        classes: Any = None,
        image_ext: str | None = None,
        image_root: str | None = None,
        expert_predictions: str | None = None,
        seed: int = 0,
    ) -> None:
        """ChestX-ray14 four-findings labels (default: the CSV shipped with torchxrayvision) -> yes/no records."""
        from data_prepare.cxr_classification import convert_chestxray14

        _report(
            convert_chestxray14(
                input,
                output,
                split=split,
                classes=classes,
                image_ext=image_ext,
                image_root=image_root,
                expert_predictions=expert_predictions,
                seed=seed,
            )
        )

    def chexpert(
        self,
        input: str,
        output: str,
        classes: Any = None,
        image_root: str | None = None,
        expert_predictions: str | None = None,
        split: str = "test",
        seed: int = 0,
    ) -> None:
        """CheXpert groundtruth.csv -> yes/no records for the five reference classes."""
        from data_prepare.cxr_classification import convert_chexpert

        _report(
            convert_chexpert(
                input,
                output,
                classes=classes,
                image_root=image_root,
                expert_predictions=expert_predictions,
                split=split,
                seed=seed,
            )
        )

    def expert_cxr(
        self,
        input: str,
        output: str,
        predictions: str,
        image_root: str | None = None,
        seed: int = 0,
        test_frac: float = 0.0,
        test_output: str | None = None,
    ) -> None:
        """Any single-image record file + CXR ensemble predictions (the predict verb's JSON or a folder of per-image
        JSONs) -> the 4-turn CXR expert conversations."""
        from data_prepare.expert_cxr import convert_expert_cxr

        _report_split(
            convert_expert_cxr(
                input,
                output,
                predictions,
                image_root=image_root,
                seed=seed,
                test_frac=test_frac,
                test_output=test_output,
            )
        )

    def expert_vista3d(
        self,
        input: str,
        output: str,
        preset: str = "vista3d",
        group: str | None = None,
        image_dir: str | None = None,
        slices_per_volume: int = 4,
        seed: int = 0,
        test_frac: float = 0.0,
        test_output: str | None = None,
    ) -> None:
        """CT volumes + label maps (MSD folder or datalist) -> slice pictures and VISTA3D expert conversations."""
        from data_prepare.expert_vista3d import convert_expert_vista3d

        _report_split(
            convert_expert_vista3d(
                input,
                output,
                preset=preset,
                group=group,
                image_dir=image_dir,
                slices_per_volume=slices_per_volume,
                seed=seed,
                test_frac=test_frac,
                test_output=test_output,
            )
        )

    def expert_brats(
        self,
        input: str,
        output: str,
        image_dir: str | None = None,
        slices_per_volume: int = 3,
        seg_suffix: str = "_seg",
        seed: int = 0,
        test_frac: float = 0.0,
        test_output: str | None = None,
    ) -> None:
        """BraTS folder (t1ce/t1/t2/flair + seg) -> slice pictures and the three BraTS expert conversations."""
        from data_prepare.expert_brats import convert_expert_brats

        _report_split(
            convert_expert_brats(
                input,
                output,
                image_dir=image_dir,
                slices_per_volume=slices_per_volume,
                seg_suffix=seg_suffix,
                seed=seed,
                test_frac=test_frac,
                test_output=test_output,
            )
        )

    def validate(self, input: str, image_root: str | None = None, verify_images: bool = False) -> None:
        """Check a record file (schema, turns, placeholders, unique ids, images under image_root, decodable with
        --verify_images) and print counts; exits with status 1 when any record is invalid."""
        from data_prepare.validate import validate_records

        summary = validate_records(input, image_root=image_root, verify_images=verify_images)
        print(json.dumps(summary, indent=1, ensure_ascii=False))
        if summary["invalid"]:
            sys.exit(1)

    def mixture(self, output: str, datasets: Any, check: bool = True) -> None:
        """Write a training-mixture manifest; datasets = {name: {records, image_root, repeat}} or a JSON file.
        Repeats default to the reference's (usmle 10, radvqa/slake/pathvqa 4, expert_mimic_vqa 2,
        expert_vista3d 8, expert_brats 16, mimic_report 1, mimic_report_expert 1)."""
        from data_prepare.mixture import write_mixture

        result = write_mixture(output, datasets, check=check)
        print(json.dumps({"entries": result["entries"], "data_mixture": result["data_mixture"]}))


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m data_prepare``; user errors are printed without a traceback (exit status 2)."""
    from vila_m3_core.cli import run_fire

    run_fire(DataPrepareCLI, argv, "data_prepare")


if __name__ == "__main__":
    main()
