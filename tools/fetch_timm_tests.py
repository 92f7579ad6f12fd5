"""Fetch timm's own model tests for the installed timm version.

    python tools/fetch_timm_tests.py [--cache-dir DIR] [--force]

Downloads the source distribution of the installed timm from PyPI with pip
(``pip download --no-deps --no-binary :all:``; nothing is installed) and keeps
only its ``tests/test_models.py``, as
``DIR/timm-tests/<timm version>/test_models.py`` (DIR: ``$BCSSL_CACHE_DIR`` or
``~/.cache/bcssl_mm``). ``tests/test_models/test_timm_upstream_suite.py`` runs
the applicable tests of that file against the ``bcssl_convnext_*`` models and
skips when it is absent. Returns at once when the file is already there.
"""
import argparse
import os
import os.path as osp
import subprocess
import sys
import tarfile
import tempfile

UPSTREAM_MEMBER = 'tests/test_models.py'


def default_cache_dir() -> str:
    return os.environ.get('BCSSL_CACHE_DIR',
                          osp.expanduser('~/.cache/bcssl_mm'))


def timm_tests_file(timm_version: str, cache_dir: str = None) -> str:
    """Where the ``test_models.py`` of ``timm_version`` is kept."""
    return osp.join(cache_dir or default_cache_dir(), 'timm-tests',
                    timm_version, 'test_models.py')


def fetch(timm_version: str, dest: str) -> None:
    """Download timm's sdist and write its ``tests/test_models.py`` to
    ``dest`` (atomically)."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([
            sys.executable, '-m', 'pip', 'download', '--quiet', '--no-deps',
            '--no-binary', ':all:', '--disable-pip-version-check', '-d', tmp,
            f'timm=={timm_version}'
        ],
                       check=True)
        sdists = [f for f in os.listdir(tmp) if f.endswith('.tar.gz')]
        if len(sdists) != 1:
            raise RuntimeError(f'pip download of timm=={timm_version} gave '
                               f'{sorted(os.listdir(tmp))}, not one sdist')
        member = f'timm-{timm_version}/{UPSTREAM_MEMBER}'
        with tarfile.open(osp.join(tmp, sdists[0])) as tar:
            try:
                src = tar.extractfile(member)
            except KeyError:
                src = None
            if src is None:
                raise RuntimeError(f'{sdists[0]} has no {member}')
            data = src.read()
    os.makedirs(osp.dirname(dest), exist_ok=True)
    partial = dest + '.partial'
    with open(partial, 'wb') as f:
        f.write(data)
    os.replace(partial, dest)


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Fetch timm's tests/test_models.py for the installed timm")
    parser.add_argument(
        '--cache-dir',
        default=None,
        help='cache root (default: $BCSSL_CACHE_DIR or ~/.cache/bcssl_mm)')
    parser.add_argument(
        '--force', action='store_true', help='download even if present')
    return parser


def main(args: argparse.Namespace) -> None:
    import timm
    dest = timm_tests_file(timm.__version__, args.cache_dir)
    if osp.isfile(dest) and not args.force:
        return
    fetch(timm.__version__, dest)
    print(f'[fetch_timm_tests] timm {timm.__version__} tests at {dest}')


if __name__ == '__main__':
    main(get_args_parser().parse_args())
