"""Importing the experts package and the agent stays cheap: no torch, MONAI or torchxrayvision at import time."""

import subprocess
import sys


def test_package_imports_are_lazy():
    code = (
        "import sys, vila_m3_core.experts as experts, vila_m3_core.agent\n"
        "heavy = [name for name in ('torch', 'monai', 'torchxrayvision') if name in sys.modules]\n"
        "assert not heavy, heavy\n"
        "assert experts.parse_expert_call('<CXR()>', ['CXR']).call.name == 'CXR'\n"
        "assert experts.render_model_cards().startswith('Here is a list')\n"
        "assert experts.cards.load_cards().names()[0] == 'BRATS'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_unknown_attribute():
    import pytest

    import vila_m3_core.experts as experts

    with pytest.raises(AttributeError):
        experts.no_such_thing  # noqa: B018
