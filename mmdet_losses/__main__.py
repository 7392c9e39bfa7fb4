"""``python -m mmdet_losses list|show NAME|info|check CONFIG``: the catalogue of
registered losses (see :mod:`mmdet_losses.catalogue`). Importing this module does nothing."""

if __name__ == '__main__':
    import sys

    from mmdet_losses.catalogue import main

    sys.exit(main())
