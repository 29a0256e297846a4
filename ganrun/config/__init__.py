"""Configs: the typed schemas (schema), composing `ganrun train`'s config with Hydra (compose), the checks
of a composed config (validate), the one checked way a config node becomes an object (targets), the
helpers on keys (keys) and a run's relative data paths (paths). Nothing here imports torch. The names
below are the package's interface."""

from ganrun.config.compose import compose, explain, option_files, register, run_folder
from ganrun.config.keys import closest, flat_items, may_change_on_resume, override_key, unknown_keys
from ganrun.config.paths import rebase
from ganrun.config.schema import (
    DEVICES,
    EXPORT_FORMATS,
    GROUPS,
    LR_SCHEDULES,
    ON_NAN,
    PRECISIONS,
    RENAMED,
    RESUME_MAY_CHANGE,
    SAMPLE_MODES,
    Config,
    Device,
    EvalConfig,
    ExportConfig,
    OptimizerConfig,
    SampleConfig,
    TrainConfig,
)
from ganrun.config.validate import (
    check_clusters,
    check_known_keys,
    check_logger,
    check_name,
    check_resume_overrides,
    parse_key_values,
    resumed_config,
    validate,
)
from ganrun.errors import ConfigError

__all__ = ["compose", "explain", "option_files", "register", "run_folder", "closest", "flat_items",
           "may_change_on_resume", "override_key", "unknown_keys", "DEVICES", "EXPORT_FORMATS", "GROUPS",
           "LR_SCHEDULES", "ON_NAN", "PRECISIONS", "RENAMED", "RESUME_MAY_CHANGE", "SAMPLE_MODES", "Config", "Device",
           "EvalConfig", "ExportConfig", "OptimizerConfig", "SampleConfig", "TrainConfig", "check_clusters", "check_known_keys", "check_logger", "check_name", "check_resume_overrides",
           "parse_key_values", "rebase", "resumed_config", "validate", "ConfigError"]
