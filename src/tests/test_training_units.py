"""roles/detector_training's units, rendered as Ansible renders them: the trainer runs the
checkout's script (through facekit.model.threads on an mkl env), the eval job runs the checkout's
evaluator on train/ into eval/ below the trainer's priority and with its hardening, TensorBoard
listens on the loopback only and writes nothing."""

import os
import shlex

import jinja2
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROLE = os.path.join(REPO, "roles", "detector_training")

WORK = "/var/lib/facekit/training/face_ssd_embedded"
FACTS = {
    "ansible_managed": "Managed by Ansible",
    "facekit_python_env_file": "/etc/facekit/training.env",
    "__detector_training_python": "/opt/conda/envs/tf-cpu/bin/python",
    "__detector_training_research": "/opt/models/research",
    "__detector_training_entry_point": "object_detection/train.py",
    "__detector_training_eval_entry_point": "object_detection/eval.py",
    # /etc/facekit/training.env of a stock env (roles/training_host writes no thread counts there).
    "facekit_python_env": {"FACEKIT_PYTHON": "/opt/conda/envs/tf-cpu/bin/python"},
}
MKL_ENV = {"FACEKIT_PYTHON": "/opt/conda/envs/tf-mkl/bin/python",
           "FACEKIT_INTRA_OP_THREADS": "4", "FACEKIT_INTER_OP_THREADS": "1"}


def render(name, overrides=None):
    with open(os.path.join(ROLE, "defaults", "main.yml")) as handle:
        variables = yaml.safe_load(handle)
    env = jinja2.Environment(trim_blocks=True, undefined=jinja2.StrictUndefined)
    # The role's internal values, templated the way Ansible resolves vars/main.yml.
    with open(os.path.join(ROLE, "vars", "main.yml")) as handle:
        internal = yaml.safe_load(handle)
    variables.update(FACTS)
    variables.update(overrides or {})
    variables["detector_training_dir"] = env.from_string(
        variables["detector_training_dir"]).render(**variables)
    for key in ("__detector_training_train_dir", "__detector_training_config",
                "__detector_training_eval_dir", "__detector_training_log"):
        variables[key] = env.from_string(internal[key]).render(**variables)
    with open(os.path.join(ROLE, "templates", name)) as handle:
        text = env.from_string(handle.read()).render(**variables)
    unit = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            unit.setdefault(key, []).append(value)
    return unit


def test_eval_job_runs_the_checkouts_evaluator_on_the_trainers_checkpoints():
    unit = render("facekit-eval.service.j2")
    argv = shlex.split(unit["ExecStart"][0])
    assert argv[:2] == ["/opt/conda/envs/tf-cpu/bin/python",
                        "/opt/models/research/object_detection/eval.py"]
    assert sorted(argv[2:]) == sorted([
        "--logtostderr", "--checkpoint_dir=%s/train" % WORK, "--eval_dir=%s/eval" % WORK,
        "--pipeline_config_path=%s/pipeline.config" % WORK])
    # The trainer's user and hardening; it may write eval/ only.
    trainer = render("facekit-training.service.j2")
    for key in ("User", "NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateTmp",
                "EnvironmentFile", "WorkingDirectory"):
        assert unit[key] == trainer[key], key
    assert unit["ReadWritePaths"] == [WORK + "/eval"]
    assert unit["Restart"] == ["on-failure"]
    # Below the trainer, so that it never slows training much.
    assert int(unit["Nice"][0]) > int(trainer["Nice"][0])
    assert int(unit["CPUWeight"][0]) < 100
    # A clean exit flushes the last score (SIGTERM would drop it).
    assert unit["KillSignal"] == ["SIGINT"]


def test_eval_job_follows_the_legacy_layout():
    unit = render("facekit-eval.service.j2",
                  {"__detector_training_eval_entry_point": "object_detection/legacy/eval.py"})
    evaluator = shlex.split(unit["ExecStart"][0])[1]
    assert evaluator == "/opt/models/research/object_detection/legacy/eval.py"


def test_tensorboard_listens_on_the_loopback_and_writes_nothing():
    unit = render("facekit-tensorboard.service.j2", {"detector_training_tensorboard_port": 16006})
    argv = shlex.split(unit["ExecStart"][0])
    assert argv[:3] == ["/opt/conda/envs/tf-cpu/bin/python", "-m", "tensorboard.main"]
    assert sorted(argv[3:]) == sorted(["--logdir=" + WORK, "--host=127.0.0.1", "--port=16006"])
    assert unit["User"] == ["facekit-train"]
    assert unit["ProtectSystem"] == ["strict"] and "ReadWritePaths" not in unit
    assert unit["NoNewPrivileges"] == ["true"] and unit["PrivateTmp"] == ["true"]


def test_the_trainer_runs_the_checkouts_script_on_a_stock_env():
    unit = render("facekit-training.service.j2")
    argv = shlex.split(unit["ExecStart"][0])
    assert argv[:2] == ["/opt/conda/envs/tf-cpu/bin/python",
                        "/opt/models/research/object_detection/train.py"]
    assert "--train_dir=%s/train" % WORK in argv


def test_the_trainer_gets_the_sessions_pools_on_an_mkl_env():
    unit = render("facekit-training.service.j2", {
        "facekit_python_env": MKL_ENV,
        "__detector_training_python": MKL_ENV["FACEKIT_PYTHON"]})
    argv = shlex.split(unit["ExecStart"][0])
    # systemd fills ${...} from EnvironmentFile= (the training host's training.env).
    assert argv[:8] == [MKL_ENV["FACEKIT_PYTHON"], "-m", "facekit.model.threads",
                        "--intra-op", "${FACEKIT_INTRA_OP_THREADS}",
                        "--inter-op", "${FACEKIT_INTER_OP_THREADS}",
                        "/opt/models/research/object_detection/train.py"]
    assert unit["EnvironmentFile"] == ["/etc/facekit/training.env"]
    assert "--pipeline_config_path=%s/pipeline.config" % WORK in argv
