"""The one place the version lives; read by the package, setup.py and the files it writes."""
__version__ = '0.8.0'
