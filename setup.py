"""Install bcssl_mm. Install torch first (see README "Set-up"); mmcv 2.1.0 is
built from source by pip if no wheel is available."""
import os.path as osp
from setuptools import find_packages, setup


def read_requirements(path: str) -> list:
    here = osp.dirname(osp.abspath(__file__))
    with open(osp.join(here, path)) as f:
        return [
            line.strip() for line in f
            if line.strip() and not line.startswith(('#', '-'))
        ]


def read_version() -> str:
    scope: dict = {}
    with open(
            osp.join(
                osp.dirname(osp.abspath(__file__)), 'bcssl_mm',
                'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


setup(
    name='bcssl_mm',
    version=read_version(),
    description='BC-SSL: self-supervised large-kernel ConvNeXt on OpenMMLab '
    '(arXiv 2312.05695)',
    long_description=open('README.md').read()
    if osp.exists('README.md') else '',
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.8',
    packages=find_packages(include=['bcssl_mm', 'bcssl_mm.*']),
    # the paper's numbers that tools/analysis_tools/collect_results.py reads
    package_data={'bcssl_mm': ['evaluation/paper_results.json']},
    install_requires=read_requirements('requirements/runtime.txt'),
    extras_require={'tests': read_requirements('requirements/tests.txt')},
    zip_safe=False,
)
