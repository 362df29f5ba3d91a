def main():
    from .app import main as _main
    _main()
