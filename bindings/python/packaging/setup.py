"""The wheel ships liblarder.so.1, built for this machine, and loads it with
ctypes (no C extension): so it is a platform wheel (the library in platlib),
tagged py3-none-<platform>: any Python 3 on this platform."""
from setuptools import setup
from setuptools.dist import Distribution
from wheel.bdist_wheel import bdist_wheel


class BinaryDistribution(Distribution):
    def has_ext_modules(self):
        return True  # liblarder.so.1 is machine code


class PlatformWheel(bdist_wheel):
    def get_tag(self):
        _, _, platform = super().get_tag()
        return "py3", "none", platform


setup(distclass=BinaryDistribution, cmdclass={"bdist_wheel": PlatformWheel})
