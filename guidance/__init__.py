"""thinkgate guidance: decode-time thinking-budget guidance as a vLLM logits-processor plugin.

Modules: :mod:`guidance.core` (pure tensor math), :mod:`guidance.params`
(``vllm_xargs`` keys and validation), :mod:`guidance.xargs` (gateway helper),
:mod:`guidance.v1` / :mod:`guidance.mrv2` (the two vLLM interfaces),
:mod:`guidance.plugin` (the class vLLM loads). Importing this package imports
only the standard library.
"""

from __future__ import annotations

__all__ = ["ENTRY_POINT", "PLUGIN", "entry_point_installed", "server_args"]

#: ``--logits-processors`` value for the plugin.
PLUGIN = "guidance.plugin:BudgetGuidance"
#: Name of the plugin's entry point in the ``vllm.logits_processors`` group.
ENTRY_POINT = "thinkgate_guidance"


def entry_point_installed() -> bool:
    """Whether this environment's metadata registers the plugin as a ``vllm.logits_processors`` entry point."""
    from importlib.metadata import entry_points

    return any(ep.value == PLUGIN for ep in entry_points(group="vllm.logits_processors"))


def server_args() -> list[str]:
    """Extra vLLM server arguments that load the plugin: none when the entry point already does.

    Loading it twice (entry point and ``--logits-processors``) would give two
    instances; the second one disables itself, but the flag is still wasted.
    """
    return [] if entry_point_installed() else ["--logits-processors", PLUGIN]
