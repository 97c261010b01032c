"""`runt export` and `runt visualize` (actors/export/checkpoints.py, actors/export/visualize.py,
run as the command runs them): files that work outside runt."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import Api
from tests.web.helpers import create, env_for, learner_for, store_checkpoint

RUNT = [sys.executable, "-m", "cli.main"]
OBSERVATIONS = [[0.0, 0.0, 0.05, 0.0], [0.1, -0.3, -0.02, 0.4], [-1.0, 0.5, 0.1, -0.8]]


async def test_torchscript_export_picks_the_actions_testmodel_picks(
    alice: Api, database, db_url, tmp_path
):
    model_id = await create(alice)
    store_checkpoint(database, model_id, learner_for(), version=3, env_id="CartPole-v1")
    out = tmp_path / "policy.pt"
    result = subprocess.run(
        [*RUNT, "export", str(model_id), "--format", "torchscript", "--out", str(out)],
        env=env_for(db_url), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr

    # A fresh, isolated interpreter that imports nothing of runt: only torch.
    script = (
        "import json, sys, torch\n"
        f"m = torch.jit.load({str(out)!r})\n"
        f"print(json.dumps(m(torch.tensor({OBSERVATIONS})).tolist()))\n"
        "assert not any(n.split('.')[0] in ('actors', 'web', 'broker') for n in sys.modules)\n"
    )
    plain = subprocess.run(
        [sys.executable, "-I", "-c", script], capture_output=True, text=True, timeout=120
    )
    assert plain.returncode == 0, plain.stderr
    exported = json.loads(plain.stdout)

    served = []
    for observation in OBSERVATIONS:
        _, body = await alice.post(
            "/testmodel/", json={"model_id": model_id, "observation": observation, "steps": 1}
        )
        served.append(int(body["data"]["action"][0][0]))
    assert exported == served


async def test_visualize_writes_a_gif(alice: Api, database, db_url, tmp_path):
    model_id = await create(alice)
    store_checkpoint(database, model_id, learner_for(), version=1, env_id="CartPole-v1")
    out = tmp_path / "agent.gif"
    result = subprocess.run(
        [*RUNT, "visualize", str(model_id), "--out", str(out), "--episodes", "2"],
        env=env_for(db_url), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert out.read_bytes()[:6] in (b"GIF87a", b"GIF89a")
    missing = subprocess.run(
        [*RUNT, "visualize", "424242", "--out", str(out)],
        env=env_for(db_url), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert missing.returncode != 0 and "no checkpoint" in missing.stderr
