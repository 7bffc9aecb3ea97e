"""Versions of installed packages, read from their metadata without importing them.

The bundle records the TensorFlow of the environment it is made in (the training
host's, where export_inference_graph.py ran); importing TensorFlow for its
__version__ would cost seconds for nothing.
"""

import logging

log = logging.getLogger(__name__)

TENSORFLOW_DISTRIBUTIONS = ("tensorflow", "tensorflow-cpu", "tensorflow-gpu")


def installed_version(*names):
    """Version of the first installed distribution of `names`, else None."""
    try:
        # Python >= 3.8; 3.6 and 3.7 take the ImportError branch (hence novermin).
        from importlib import metadata  # noqa: PLC0415  # novermin
    except ImportError:
        metadata = None
    for name in names:
        if metadata is not None:
            try:
                return metadata.version(name)
            except metadata.PackageNotFoundError:
                continue
        try:
            import pkg_resources  # noqa: PLC0415 - Python 3.6/3.7 (setuptools)

            return pkg_resources.get_distribution(name).version
        except Exception as exc:  # noqa: BLE001 - DistributionNotFound, or no setuptools
            log.debug("no version of %s: %s", name, exc)
    return None


# Builds whose wheel also registers as "tensorflow": looked for first.
TENSORFLOW_BUILDS = ("intel-tensorflow",)


def tensorflow_version():
    """The installed TensorFlow's version (None if there is none)."""
    return installed_version(*TENSORFLOW_DISTRIBUTIONS)


def tensorflow_build():
    """"name==version" of the installed TensorFlow distribution (None if there is none).

    intel-tensorflow's wheel carries a tensorflow .dist-info of its own, so "tensorflow"
    alone cannot tell the MKL build from the stock one: the builds are asked first."""
    for name in TENSORFLOW_BUILDS + TENSORFLOW_DISTRIBUTIONS:
        version = installed_version(name)
        if version is not None:
            return "{}=={}".format(name, version)
    return None
