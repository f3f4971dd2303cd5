"""Experts come from the cards' runners: a user adds a card + a runner module, and the loop finds it."""

import json

from agent_doubles import ScriptedVLM

from vila_m3_core.agent import Agent
from vila_m3_core.experts.cards import DEFAULT_CARD_DIR, load_cards

RUNNER = """
from vila_m3_core.experts import feedback
from vila_m3_core.experts.base import Expert, ExpertResult, register_expert

BUILT = []


class EchoExpert(Expert):
    name = "ECHO"

    def __init__(self, scale=1, device="cpu"):
        self.scale, self.device = scale, device
        BUILT.append(self)

    def run(self, request):
        return ExpertResult(
            text=f"Echo says {request.args} x{self.scale} on {self.device}. ",
            instruction=feedback.instruction(request.prompt),
        )


register_expert("ECHO", EchoExpert)
"""


def _card(folder, runner):
    card = {
        "name": "ECHO",
        "modality": "ultrasound",
        "task": "measurement",
        "overview": "echo test expert",
        "accuracy": "n/a",
        "valid_args": ["heart"],
        "default_args": "heart",
        "runner": runner,
    }
    (folder / "echo.json").write_text(json.dumps(card))


def test_card_runner_module_registers_the_expert(tmp_path, monkeypatch, cxr_png):
    (tmp_path / "echo_runner_a.py").write_text(RUNNER)
    monkeypatch.syspath_prepend(str(tmp_path))
    cards_dir = tmp_path / "cards"
    cards_dir.mkdir()
    _card(cards_dir, "echo_runner_a")
    cards = load_cards([DEFAULT_CARD_DIR, cards_dir])
    vlm = ScriptedVLM(["<ECHO()>", "ok", "<ECHO(heart)>", "ok again"])
    agent = Agent(vlm, cards=cards, expert_config={"*": {"device": "cpu"}, "echo": {"scale": 3}}, output_dir=tmp_path)
    agent.ask(cxr_png, "Q")
    assert "<ECHO(args)> Modality: ultrasound" in vlm.prompts[0]
    assert "Echo says heart x3 on cpu. Use this result" in vlm.prompts[1]
    agent.ask(prompt="again")
    import echo_runner_a

    assert len(echo_runner_a.BUILT) == 1  # built once, kept for later calls


def test_card_runner_module_and_factory(tmp_path, monkeypatch, cxr_png):
    (tmp_path / "echo_runner_b.py").write_text(RUNNER)
    monkeypatch.syspath_prepend(str(tmp_path))
    _card(tmp_path, "echo_runner_b:EchoExpert")
    (tmp_path / "index.json").write_text('{"header": "H", "footer": "F", "order": []}')
    vlm = ScriptedVLM(["<ECHO(Heart)>", "ok"])
    Agent(vlm, cards=load_cards([tmp_path]), output_dir=tmp_path).ask(cxr_png, "Q")
    assert "Echo says heart x1 on cpu." in vlm.prompts[1]


def test_runner_that_cannot_be_imported_is_not_available(tmp_path, cxr_png):
    _card(tmp_path, "no_such_runner_module")
    (tmp_path / "index.json").write_text('{"header": "H", "footer": "F", "order": []}')
    answer = Agent(ScriptedVLM(["<ECHO()>"]), cards=load_cards([tmp_path]), output_dir=tmp_path).ask(cxr_png, "Q")
    assert answer.turns[-1].text.startswith("The expert model ECHO is not available: its runner no_such_runner_module")


def test_expert_construction_error_is_an_expert_message(tmp_path, monkeypatch, cxr_png):
    (tmp_path / "echo_runner_c.py").write_text(RUNNER)
    monkeypatch.syspath_prepend(str(tmp_path))
    _card(tmp_path, "echo_runner_c:EchoExpert")
    (tmp_path / "index.json").write_text('{"header": "H", "footer": "F", "order": []}')
    agent = Agent(ScriptedVLM(["<ECHO()>"]), cards=load_cards([tmp_path]), expert_config={"ECHO": {"bad": 1}})
    answer = agent.ask(cxr_png, "Q")
    assert answer.turns[-1].text.startswith("Sorry I met an error: ")
    assert "unexpected keyword argument 'bad'" in answer.turns[-1].text
