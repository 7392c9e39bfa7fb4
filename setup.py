"""mmdet-losses. Built with ``pip install --no-build-isolation -e .`` (tools/setup.sh does it):
every folder ``mmdet_losses/ops/csrc/<name>/`` becomes a C++ extension
``mmdet_losses.ops._<name>`` compiled against the installed torch. ``MMDET_LOSSES_NO_EXT=1``
compiles nothing (the pure-PyTorch paths run); without it, a build that cannot see torch fails
with a message instead of silently producing a package without kernels."""
import glob
import os
import shutil

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))


class _NoTorchBuildExt(build_ext):
    def run(self):
        raise SystemExit(
            'mmdet-losses: torch is not importable in this build environment, so the C++ '
            'kernels cannot be compiled (the losses would run 15-30x slower). Install torch '
            'first and build against it with `pip install --no-build-isolation .` (pip\'s '
            'build isolation hides the installed torch), or set MMDET_LOSSES_NO_EXT=1 to '
            'install the pure-PyTorch version on purpose.')


def extensions():
    if os.environ.get('MMDET_LOSSES_NO_EXT') == '1':
        return {}, []
    try:
        from torch.utils.cpp_extension import BuildExtension, CppExtension
    except ImportError:
        # Not silently kernel-free: a build without torch (pip's default build isolation hides
        # the installed one) fails at build_ext, saying how to build; sdist and metadata work.
        return {'build_ext': _NoTorchBuildExt}, [Extension('mmdet_losses.ops._kernels', [])]
    class InPlaceSafeBuildExtension(BuildExtension):
        """``build_ext --inplace`` that replaces a built library (a new file, renamed over the
        old one) instead of writing into it: a process that has the old one loaded keeps
        running instead of crashing."""

        def copy_file(self, src, dst, *args, **kwargs):
            if not dst.endswith('.so'):
                return super().copy_file(src, dst, *args, **kwargs)
            partial = dst + '.partial'
            shutil.copy2(src, partial)
            os.replace(partial, dst)
            return dst, 1

    modules = []
    for folder in sorted(glob.glob(os.path.join(HERE, 'mmdet_losses', 'ops', 'csrc', '*', ''))):
        name = os.path.basename(os.path.dirname(folder))
        sources = sorted(os.path.relpath(p, HERE) for p in glob.glob(os.path.join(folder, '*.cpp')))
        # the headers too: an edited header alone makes build_ext rebuild the extension
        headers = sorted(os.path.relpath(p, HERE) for p in glob.glob(os.path.join(folder, '*.h'))
                         + glob.glob(os.path.join(folder, '..', 'common', '*.h')))
        if sources:
            modules.append(CppExtension(
                f'mmdet_losses.ops._{name}', sources, depends=headers,
                # C++20: the kernels use concepts. -g0 overrides the -g of Python's flags and
                # the linker strips the rest: the libraries ship without debug info
                extra_compile_args=['-O3', '-fopenmp', '-std=c++20', '-g0'],
                extra_link_args=['-fopenmp', '-Wl,--strip-debug']))
    return {'build_ext': InPlaceSafeBuildExtension}, modules


cmdclass, ext_modules = extensions()

setup(
    name='mmdet-losses',
    version='0.1.0',
    description='Losses for MMDetection 3.x: regression, classification, metric learning '
    'and the IoU family, correct at the edges and fast.',
    long_description=open(os.path.join(HERE, 'README.md'), encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    license_files=['LICENSE'],
    classifiers=['License :: OSI Approved :: Apache Software License',
                 'Programming Language :: Python :: 3',
                 'Programming Language :: C++',
                 'Topic :: Scientific/Engineering :: Artificial Intelligence'],
    packages=find_packages(include=['mmdet_losses', 'mmdet_losses.*']),
    python_requires='>=3.8',
    install_requires=['torch>=2.4', 'mmengine>=0.7'],
    extras_require={'mmdet': ['mmdet>=3.0', 'mmcv>=2.0.0rc4,<2.2.0'],
                    # Triton's interpreter runs the GPU kernels' tests on a CPU (CUDA builds of
                    # torch already ship Triton)
                    'test-gpu': ['triton==3.5.1']},
    ext_modules=ext_modules,
    cmdclass=cmdclass,
    zip_safe=False,
)
