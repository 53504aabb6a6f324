"""mmdet-ghm: Gradient Harmonizing Mechanism losses for MMDetection 3.x."""
from setuptools import find_packages, setup

setup(
    name='mmdet-ghm',
    version='0.1.0',
    description='Exact, sync-free GHM-C / GHM-R losses (Li, Liu & Wang, '
    'AAAI 2019) as an MMDetection 3.x plugin',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    python_requires='>=3.8',
    packages=find_packages(include=['mmdet_ghm', 'mmdet_ghm.*']),
    # torch and mmcv are not pinned: users bring the build that fits their
    # hardware (see README). tools/install.sh pins the CPU stack used in CI.
    install_requires=[
        'torch>=1.13',
        'mmengine>=0.10.0,<1.0',
        'mmcv>=2.0.0,<2.2.0',
        'mmdet>=3.0.0,<3.4.0',
        'pycocotools',
        'numpy',
        'matplotlib',
    ],
    extras_require={'tests': ['pytest']},
    license='Apache-2.0',
    classifiers=[
        'Programming Language :: Python :: 3',
        'Topic :: Scientific/Engineering :: Artificial Intelligence',
    ],
)
