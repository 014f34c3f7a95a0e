"""Training config: seed JSON keys, YAML, unknown keys and bad values named, CLI overrides, round trip,
and every field documented where it is declared."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
from pathlib import Path

import pytest

from esrgan.training import config as config_module
from esrgan.training.config import Config, ConfigError, PretrainingConfig, ValidationConfig
from esrgan.training.config_io import apply_overrides, load_config, save_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SEED_JSON = sorted(CONFIGS.glob("esrgan_*.json"))


def test_repository_has_the_seed_default_and_four_experiments() -> None:
    names = {p.name for p in SEED_JSON}
    assert "esrgan_default.json" in names
    assert len(names) == 5


@pytest.mark.parametrize("path", SEED_JSON, ids=lambda p: p.stem)
def test_seed_json_configs_load_with_their_own_keys(path: Path) -> None:
    raw = json.loads(path.read_text())
    cfg = load_config(path)
    assert cfg.scale_factor == raw["scale_factor"] == 4
    assert cfg.pretraining.cr_patch_size == raw["pretraining"]["cr_patch_size"]
    assert cfg.training.g_sched_steps == raw["training"]["g_sched_steps"]
    assert cfg.generator.num_basic_blocks == raw["generator"]["num_basic_blocks"]
    assert cfg.perceptual_loss.layer_weights == {"conv5_4": 1.0}
    assert cfg.generator_kwargs()["num_block"] == raw["generator"]["num_basic_blocks"]


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_yaml_configs_load_and_train_on_bsds500_only(path: Path) -> None:
    cfg = load_config(path)
    # Offline configs: BSDS500 splits only; Set5/Set14 are test sets and never training data. Validation
    # may use bsds100-real, BSDS500 val with degraded LR files.
    # The GPU recipe of Real-ESRGAN (realesrgan_x4.yaml) downloads DIV2K instead.
    train = {*cfg.pretraining.train_datasets, *cfg.training.train_datasets}
    val = {*cfg.pretraining.val_datasets, *cfg.training.val_datasets}
    if cfg.data.download:
        assert train | val <= {"div2k", "bsds500", "bsds500-test"}
        return
    assert train <= {"bsds500", "bsds500-test"}
    assert val <= {"bsds500", "bsds500-test", "bsds100-real"}
    assert "bsds500" in cfg.training.train_datasets


def test_experiment_table_values() -> None:
    cfg = load_config(CONFIGS / "esrgan_p192_t128_cr_16_rrdb_div2k+bsds500.json")
    assert cfg.pretraining.cr_patch_size == [192, 192]
    assert cfg.training.cr_patch_size == [128, 128]
    assert cfg.generator.num_basic_blocks == 16
    assert cfg.pretraining.train_datasets == ["bsds500", "div2k"]
    assert cfg.pretraining.sched_step == 175000
    assert (cfg.pretraining.num_epoch, cfg.training.num_epoch) == (8000, 6000)


def test_defaults_are_the_paper_recipe() -> None:
    cfg = Config()
    assert cfg.pretraining.lr == 2e-4 and cfg.pretraining.betas == [0.9, 0.99]
    assert cfg.training.g_lr == cfg.training.d_lr == 1e-4
    assert cfg.training.g_adversarial_loss_scaling == 5e-3
    assert cfg.training.g_content_loss_scaling == 1e-2
    assert cfg.content_loss.loss_f == "l1"
    assert cfg.interpolation.alpha == 0.8
    assert (cfg.model.discriminator, cfg.training.gan_loss) == ("vgg", "ragan")


def test_real_esrgan_discriminator_and_gan_loss_are_selectable() -> None:
    cfg = load_config(
        CONFIGS / "smoke.yaml",
        ["model.discriminator=unet", "training.gan_loss=vanilla", "unet_discriminator.num_feat=16"],
    )
    assert (cfg.model.discriminator, cfg.training.gan_loss) == ("unet", "vanilla")
    assert (cfg.unet_discriminator.num_feat, cfg.unet_discriminator.skip_connection) == (16, True)
    assert Config().unet_discriminator.num_feat == 64  # Real-ESRGAN's size
    with pytest.raises(ConfigError) as exc:  # three stride-2 levels: GAN patches must divide by 8
        load_config(None, ["model.discriminator=unet", "training.cr_patch_size=[36, 36]"])
    assert str(exc.value) == "training.cr_patch_size: must be a multiple of 8 for the U-Net discriminator"
    assert load_config(None, ["training.cr_patch_size=[36, 36]"]).model.discriminator == "vgg"


def test_yaml_smoke_config_and_overrides() -> None:
    cfg = load_config(
        CONFIGS / "smoke.yaml",
        [
            "training.g_lr=5e-5",
            "batch_size=2",
            "pretraining/sched_step=7",
            "training.g_sched_steps=[3, 6]",
            "data.val_crop=null",
        ],
    )
    assert cfg.training.g_lr == 5e-5
    assert cfg.batch_size == 2
    assert cfg.pretraining.sched_step == 7
    assert cfg.training.g_sched_steps == [3, 6]
    assert cfg.data.val_crop is None
    assert cfg.generator.rrdb_channels == 16  # untouched keys keep the file's values


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"trainig": {}}, "trainig"),
        ({"training": {"g_lrr": 1e-4}}, "training.g_lrr"),
        ({"perceptual_loss": {"layer_weights": {"conv9_9": 1.0}}}, "perceptual_loss.layer_weights.conv9_9"),
    ],
)
def test_unknown_keys_are_errors_naming_the_key(tmp_path: Path, data: dict, key: str) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(path)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("batch_size=zero", "batch_size"),
        ("batch_size=0", "batch_size"),
        ("training.g_lr=-1", "training.g_lr"),
        ("training.d_r1_weight=-1", "training.d_r1_weight"),
        ("pretraining.cr_patch_size=[128, 96]", "pretraining.cr_patch_size"),
        ("perceptual_loss.feature_norm=layer", "perceptual_loss.feature_norm"),
        ("pretraining.cr_patch_size=[130, 130]", "pretraining.cr_patch_size"),
        ("content_loss.loss_f=l3", "content_loss.loss_f"),
        ("training.d_sched_steps=[300, 100]", "training.d_sched_steps"),
        ("scale_factor=3", "scale_factor"),
        ("ema.decay=1.0", "ema.decay"),
        ("interpolation.alpha=1.5", "interpolation.alpha"),
        ("precision=fp8", "precision"),
        ("generator.use_subpixel_conv=maybe", "generator.use_subpixel_conv"),
        ("validation.pretrain_metric=lpips", "validation.pretrain_metric"),
        ("batch_size.sub=1", "batch_size"),
        ("pretraining.lr_min=1", "pretraining.lr_min"),
        ("training.num_epoch=null", "training.num_epoch"),
        ("validation.every=0", "validation.every"),
        ("generator.num_residual_blocks=1", "generator.num_residual_blocks"),
        ("data.val_crop=130", "data.val_crop"),
        ("cpu_threads=0", "cpu_threads"),
        ("model.discriminator=patchgan", "model.discriminator"),
        ("training.gan_loss=wgan", "training.gan_loss"),
        ("unet_discriminator.num_feat=0", "unet_discriminator.num_feat"),
        ("unet_discriminator.skip_connection=2", "unet_discriminator.skip_connection"),
    ],
)
def test_bad_values_are_errors_naming_the_key(override: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(None, [override])


def test_override_syntax_error() -> None:
    with pytest.raises(ConfigError, match=r"key\.sub=value"):
        apply_overrides({}, ["batch_size"])


def test_invalid_file_contents(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml"):
        load_config(bad)
    with pytest.raises(ConfigError, match=r"missing\.json"):
        load_config(tmp_path / "missing.json")


def test_resolved_config_round_trips_through_yaml(tmp_path: Path) -> None:
    cfg = load_config(CONFIGS / "smoke.yaml", ["seed=7"])
    save_config(cfg, tmp_path / "config.yaml")
    again = load_config(tmp_path / "config.yaml")
    assert again == cfg
    assert again.to_dict()["seed"] == 7


def test_section_errors_carry_the_section_name_and_the_old_wording() -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(None, ["pretraining.lr_min=1e-3"])
    assert str(exc.value) == "pretraining.lr_min: must be in [0, pretraining.lr], got 0.001"
    with pytest.raises(ConfigError) as exc:
        load_config(None, ["training.cr_patch_size=[128, 96]"])
    assert str(exc.value) == (
        "training.cr_patch_size: must be a square [H, W] of positive sizes, got [128, 96]"
    )


def test_sections_check_themselves_when_built_in_python() -> None:
    with pytest.raises(ConfigError, match=r"^lr_min: "):
        PretrainingConfig(lr_min=1.0)
    with pytest.raises(ConfigError, match=r"^pretrain_metric: "):
        ValidationConfig(pretrain_metric="lpips")
    with pytest.raises(ConfigError, match=r"^pretraining\.cr_patch_size: must be a multiple of scale_factor"):
        Config(scale_factor=8, pretraining=PretrainingConfig(cr_patch_size=[36, 36]))


def test_every_config_field_has_a_docstring_under_it() -> None:
    tree = ast.parse(inspect.getsource(config_module))
    classes = {
        node.name: node
        for node in tree.body
        if isinstance(node, ast.ClassDef) and dataclasses.is_dataclass(getattr(config_module, node.name))
    }
    assert {"Config", "PretrainingConfig", "TrainingConfig", "DataConfig"} <= set(classes)
    undocumented = []
    for name, node in classes.items():
        for stmt, following in zip(node.body, [*node.body[1:], None], strict=True):
            if not isinstance(stmt, ast.AnnAssign):
                continue
            documented = (
                isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            )
            if not documented:
                undocumented.append(f"{name}.{ast.unparse(stmt.target)}")
    assert not undocumented
