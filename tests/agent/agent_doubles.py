"""Test doubles for the agent loop: a scripted VLM and small experts built on the real feedback wordings."""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from vila_m3_core.conversation import render_prompt
from vila_m3_core.experts import feedback
from vila_m3_core.experts.base import Expert, ExpertRequest, ExpertResult


@dataclass
class Details:
    text: str
    prompt_tokens: int
    new_tokens: int
    seconds: float


class ScriptedVLM:
    """Answers with the next scripted output; records the rendered prompt and images of every call."""

    def __init__(self, outputs, conv_mode="llama_3"):
        self.outputs = list(outputs)
        self.conv_mode = conv_mode
        self.prompts: list[str] = []
        self.images: list[list] = []
        self.gen_kwargs: list[dict] = []

    def generate(self, turns, **gen):
        # the real VLM's contract: one image per <image> token of the rendered prompt
        prompt = render_prompt(turns, self.conv_mode)
        images = [image for turn in turns for image in turn.images]
        assert prompt.count("<image>") == len(images), (prompt, len(images))
        self.prompts.append(prompt)
        self.images.append(images)
        self.gen_kwargs.append(gen)
        if not self.outputs:
            raise AssertionError("the VLM was asked more often than scripted")
        return self.outputs.pop(0)


class DetailedVLM(ScriptedVLM):
    """A VLM that reports token counts (``return_details=True``)."""

    def generate(self, turns, return_details=False, **gen):
        text = super().generate(turns, **gen)
        return Details(text, prompt_tokens=100 + len(self.prompts), new_tokens=len(text.split()), seconds=0.01)


class LegendExpert(Expert):
    """A segmentation-like expert: the VISTA3D feedback wording with a fixed legend and an overlay picture."""

    def __init__(self, name="VISTA3D", legend=(("red", "liver"), ("blue", "hepatic tumor"))):
        self.name = name
        self.legend = list(legend)
        self.requests: list[ExpertRequest] = []

    def run(self, request: ExpertRequest) -> ExpertResult:
        self.requests.append(request)
        overlay = Image.new("RGB", (8, 8), (255, 0, 0))
        return ExpertResult(
            text=feedback.vista3d_feedback(self.legend),
            images=[overlay],
            instruction=feedback.instruction(request.prompt),
            files={"segmentation": f"{request.output_dir}/segmentation.nii.gz"},
            seconds={"inference": 0.001, "rendering": 0.002},
            data={"args": request.args},
        )


class FindingsExpert(Expert):
    """A CXR-like expert: the CXR feedback wording, no image."""

    name = "CXR"

    def __init__(self):
        self.requests: list[ExpertRequest] = []

    def run(self, request: ExpertRequest) -> ExpertResult:
        self.requests.append(request)
        findings = {name: name == "Effusion" for name in feedback.CXR_CLASSES}
        return ExpertResult(text=feedback.cxr_feedback(findings), instruction=feedback.instruction(request.prompt))


class FailingExpert(Expert):
    name = "VISTA3D"

    def run(self, request: ExpertRequest) -> ExpertResult:
        raise RuntimeError("CUDA out of memory (simulated)")
