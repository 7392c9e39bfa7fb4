"""``python -m mmdet_losses list|show NAME|info|check CONFIG``: the catalogue of
registered losses (see :mod:`mmdet_losses.catalogue`); ``python -m mmdet_losses dropin``:
the drop-in table (see :mod:`mmdet_losses.dropin`). Importing this module does nothing."""

if __name__ == '__main__':
    import sys

    if sys.argv[1:2] == ['dropin']:  # the drop-in table (mmdet_losses/dropin.py)
        from mmdet_losses.dropin import main as dropin_main
        sys.exit(dropin_main(sys.argv[2:]))

    from mmdet_losses.catalogue import main

    sys.exit(main())
