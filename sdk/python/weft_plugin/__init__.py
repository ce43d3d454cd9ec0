"""weft-plugin: write weft plugins in Python.

A weft plugin is a WebAssembly component that implements one role of the
serving pipeline. This package gives each role a base class; your module
(``plugin.py``) subclasses one and marks it with :func:`export`, and
``weft plugin build`` turns the project into a component with componentize-py.

==========  ==========================  ===============================
role        base class                  per-request object
==========  ==========================  ===============================
transform   :class:`transform.Transform`  :class:`transform.ResponseFilter`
router      :class:`router.Router`        (none)
sampler     :class:`sampler.Sampler`      :class:`sampler.Session`
tokenizer   :class:`tokenizer.Tokenizer`  :class:`tokenizer.Loaded`
==========  ==========================  ===============================

The plugin's state lives on the instance: ``__init__(self, config)`` runs once
per component instance with the plugin's configuration from ``weft.toml``
(a ``dict`` of strings); raise :class:`PluginError` there to refuse the
configuration. Every later call is a method on that same object.

Example (``plugin.py``)::

    from weft_plugin import PluginError, export
    from weft_plugin.transform import Rejected, Transform

    @export
    class Guard(Transform):
        name, version = "guard", "0.1.0"

        def __init__(self, config):
            self.phrases = [p.lower() for p in config.get("phrases", "ignore previous").split(",")]

        def on_request(self, request):
            for m in request.messages or []:
                if any(p in m.content.lower() for p in self.phrases):
                    raise Rejected(400, "prompt injection")
            return request
"""

from __future__ import annotations

from typing import Callable, Dict, Optional, TypeVar

__version__ = "0.3.0"

Config = Dict[str, str]
"""A plugin's configuration: string keys and values (structured values arrive as JSON text)."""


class PluginError(Exception):
    """Raised from ``__init__`` to refuse a configuration, or from a sampler or
    tokenizer method to fail that call; the message reaches the operator."""


T = TypeVar("T", bound=type)

_exported: Optional[type] = None
_instance: Optional[object] = None


def export(cls: T) -> T:
    """Marks ``cls`` as this component's plugin. Use exactly once, as a decorator.

    >>> @export
    ... class P:
    ...     name = "p"
    >>> _exported is P
    True
    """
    global _exported
    _exported = cls
    return cls


def exported() -> type:
    """The class passed to :func:`export` (the build's shims call this)."""
    if _exported is None:
        raise RuntimeError("plugin.py exports no plugin: mark your class with @weft_plugin.export")
    return _exported


def instance():
    """The plugin object that ``init`` built."""
    if _instance is None:
        raise RuntimeError("the host called the plugin before init")
    return _instance


def _init(config) -> None:
    """Builds the instance; a :class:`PluginError` (or any exception) refuses the config."""
    global _instance
    _instance = exported()(dict(config))


def _world():
    """The world-level exports every role's component shares (``metadata`` and
    ``init``), as the class componentize-py looks for; the shims bind it."""
    import wit_world
    from componentize_py_types import Err
    from wit_world.imports.types import PluginMetadata

    class WitWorld(wit_world.WitWorld):
        def metadata(self):
            return PluginMetadata(*_metadata())

        def init(self, config):
            try:
                _init(config)
            except Exception as e:  # any failure refuses the configuration, with its message
                raise Err(f"{type(e).__name__}: {e}")

    return WitWorld


def _call(f, *args):
    """Runs an author's sampler or tokenizer method for a shim: a
    :class:`PluginError` becomes the call's error; anything else traps."""
    from componentize_py_types import Err

    try:
        return f(*args)
    except PluginError as e:
        raise Err(str(e))


def _metadata() -> tuple:
    cls = exported()
    doc = (cls.__doc__ or "").strip().splitlines()
    description = getattr(cls, "description", None) or (doc[0] if doc else "")
    return (getattr(cls, "name", cls.__name__), getattr(cls, "version", "0.1.0"), description)


def _host(name: str) -> Optional[Callable]:
    """A host import, or None outside a component (unit tests on CPython)."""
    try:
        from wit_world.imports import host

        fn = getattr(host, name)
        import componentize_py_runtime  # noqa: F401  (present only inside the component)

        return fn
    except ImportError:
        return None


def log(level: str, message: str) -> None:
    """A structured log line attributed to this plugin: level is trace, debug, info, warn or error.

    >>> log("info", "configured")   # outside a component it prints to stderr
    """
    fn = _host("log")
    if fn is None:
        import sys

        print(f"[{level}] {message}", file=sys.stderr)
        return
    from wit_world.imports.types import LogLevel

    fn(LogLevel[level.upper()], message)


def counter_add(name: str, value: int = 1) -> None:
    """Adds to the counter ``<plugin>_<name>`` on the host's /metrics."""
    fn = _host("counter_add")
    if fn is not None:
        fn(name, value)


def histogram_record(name: str, value: float) -> None:
    """Records into the histogram ``<plugin>_<name>`` on the host's /metrics."""
    fn = _host("histogram_record")
    if fn is not None:
        fn(name, value)
