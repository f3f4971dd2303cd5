"""The ``vila-m3`` command line (python-fire). Each verb is a thin call into the module that owns the logic."""

from __future__ import annotations

import logging
import sys
from typing import Any

from vila_m3_core.errors import VilaM3Error
from vila_m3_core.model import cli as model_cli


class CLI:
    """vila-m3: run, chat with, evaluate and package the VILA-M3 medical vision-language model."""

    generate = staticmethod(model_cli.generate)

    def predict(self, image_dir, output_json, cache_dir=None, device="auto", recursive=True):
        """Score every chest X-ray picture under a folder with the CXR ensemble; write {image: {class: score}} JSON
        (see vila_m3_core.experts.cxr.predict_folder)."""
        from vila_m3_core.experts.cxr import predict_folder

        return predict_folder(image_dir, output_json, cache_dir=cache_dir, device=device, recursive=recursive)

    def bundle(self, action, *names, **kwargs):
        """MONAI bundles: ``run <name> [--config train] --key value``, ``verify [names]``, ``package [names]
        --base_url URL``, ``download_weights [names]``, ``pin_hashes <name>``, ``test [names]``
        (see vila_m3_core.bundles.cli.bundle)."""
        from vila_m3_core.bundles.cli import bundle

        return bundle(action, *names, **kwargs)

    def chat(self, *args, **kwargs):
        """Ask about an image (file, DICOM folder or 4 MRI files t1ce,t1,t2,flair); VILA-M3 may call its experts.
        Prints the answer and writes overlays, segmentations and trace.json to --output_dir
        (see vila_m3_core.agent_cli.run_chat for all flags)."""
        from vila_m3_core.agent_cli import chat

        return chat(*args, **kwargs)

    def evaluate(self, *args, **kwargs):
        """Run a benchmark (radvqa, slake, pathvqa, mimicvqa, report_mimic, report_iu, chestxray14, chexpert) or
        ``--suite all`` and print its table (see vila_m3_core.evaluation.cli.evaluate)."""
        from vila_m3_core.evaluation.cli import evaluate

        return evaluate(*args, **kwargs)

    def data_prepare(self):
        """Turn public datasets into VILA-M3 records, validate record files, write mixtures: ``vila-m3 data_prepare
        <radvqa|slake|pathvqa|mimic_vqa|mimic_reports|iu_xray|chestxray14|chexpert|expert_cxr|expert_vista3d|
        expert_brats|validate|mixture> --input ... --output ...`` (see data_prepare.cli)."""
        from data_prepare.cli import DataPrepareCLI

        return DataPrepareCLI()


def run_fire(component: Any, argv: list[str] | None, name: str) -> None:
    """Run a python-fire command line; user errors (:class:`VilaM3Error`) print one line and exit with status 2."""
    import fire

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        fire.Fire(component, command=argv, name=name)
    except VilaM3Error as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``vila-m3`` console script."""
    run_fire(CLI, argv, "vila-m3")


if __name__ == "__main__":
    main()
