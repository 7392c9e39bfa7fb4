"""The config checker (``python -m mmdet_losses check CONFIG``, run by tools/train.py) on real
configs: ours, mmdet's shipped ones, and small configs inheriting from them with one mistake
each. Config loading only: nothing is built or trained."""
import glob
import os.path as osp
import subprocess
import sys
import textwrap

import pytest

from mmdet_losses.catalogue import main
from mmdet_losses.config_check import (Problem, check_config, check_file, exit_status,
                                       format_problems, load_config)

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
OUR_CONFIGS = sorted(glob.glob(osp.join(ROOT, 'configs', '*', '*.py')))
OUR_CONFIGS = [c for c in OUR_CONFIGS if '_base_' not in c]
RETINANET = osp.join(ROOT, 'configs', 'retinanet', 'retinanet_r18_fpn_focal-ciou_shapes.py')
FASTER_RCNN = osp.join(ROOT, 'configs', 'faster_rcnn', 'faster-rcnn_r18_fpn_ce-giou_shapes.py')
IMPORT_OURS = "custom_imports = dict(imports=['mmdet_losses'], allow_failed_imports=False)\n"

# mmdet's own configs, over the heads the checks read: anchor heads, RoI heads (cascade: a
# list of heads), heads that decode their boxes themselves (FCOS, GFL, ATSS, VFNet, DDOD) and
# DETR. (All 757 of mmdet 3.3's configs that load without mmpretrain pass; too slow to test.)
MMDET_CONFIGS = [
    'retinanet/retinanet_r50_fpn_1x_coco.py',
    'faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',
    'faster_rcnn/faster-rcnn_r50_fpn_giou_1x_coco.py',
    'faster_rcnn/faster-rcnn_r50_fpn_ciou_1x_coco.py',
    'cascade_rcnn/cascade-rcnn_r50_fpn_1x_coco.py',
    'fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py',
    'gfl/gfl_r50_fpn_1x_coco.py',
    'atss/atss_r50_fpn_1x_coco.py',
    'vfnet/vfnet_r50_fpn_1x_coco.py',
    'ddod/ddod_r50_fpn_1x_coco.py',  # decodes in its own method beside AnchorHead's
    'deformable_detr/deformable-detr_r50_16xb2-50e_coco.py',
    'yolox/yolox_s_8xb8-300e_coco.py',
]


def write(tmp_path, text, name='cfg.py'):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def check_text(tmp_path, text):
    return check_file(write(tmp_path, text))


def serious(problems):
    """The errors and warnings (without the notes on mmdet's unscoped names in its bases)."""
    return [p for p in problems if p.level != 'info']


def only(problems, level=None):
    """The one problem of ``problems`` (for an error or a warning, notes aside: mmdet's base
    configs name mmdet's losses unscoped, which a config importing ours gets a note for)."""
    if level in ('error', 'warning'):
        problems = [p for p in problems if p.level != 'info']
    assert len(problems) == 1, format_problems(problems)
    if level is not None:
        assert problems[0].level == level, str(problems[0])
    return problems[0]


# ------------------------------------------------------------------------- configs that pass

@pytest.mark.parametrize('config', OUR_CONFIGS, ids=lambda c: osp.basename(c))
def test_our_configs_pass_clean(config):
    assert check_file(config) == []


def test_our_configs_are_all_checked():
    assert len(OUR_CONFIGS) >= 7


@pytest.mark.parametrize('config', MMDET_CONFIGS)
def test_mmdet_shipped_configs_pass_clean(tmp_path, config):
    """Unscoped names in a config that does not import mmdet_losses are mmdet's: no notes."""
    assert check_text(tmp_path, f"_base_ = 'mmdet::{config}'\n") == []


# -------------------------------------------------------------- IoU loss on encoded deltas

def test_iou_loss_without_reg_decoded_bbox_in_our_retinanet(tmp_path):
    problem = only(check_text(tmp_path, f"""
        _base_ = '{RETINANET}'
        model = dict(bbox_head=dict(reg_decoded_bbox=False))
    """), 'error')
    assert problem.path == 'model.bbox_head.loss_bbox'
    assert 'CIoULoss' in problem.message and 'encoded' in problem.message
    assert problem.fix == 'set model.bbox_head.reg_decoded_bbox=True'


def test_iou_loss_swapped_into_mmdet_retinanet_without_the_flag(tmp_path):
    """The head's default (AnchorHead: reg_decoded_bbox=False) counts when the key is absent."""
    problem = only(check_text(tmp_path, f"""
        _base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'
        {IMPORT_OURS}
        model = dict(bbox_head=dict(
            loss_bbox=dict(_delete_=True, type='mmdet_losses.GIoULoss', loss_weight=2.0)))
    """), 'error')
    assert problem.path == 'model.bbox_head.loss_bbox'
    assert 'reg_decoded_bbox=True' in problem.fix


def test_mmdets_own_iou_loss_without_the_flag_in_a_roi_head(tmp_path):
    problem = only(check_text(tmp_path, """
        _base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'
        model = dict(roi_head=dict(bbox_head=dict(
            loss_bbox=dict(_delete_=True, type='GIoULoss', loss_weight=10.0))))
    """), 'error')
    assert problem.path == 'model.roi_head.bbox_head.loss_bbox'
    assert problem.fix == 'set model.roi_head.bbox_head.reg_decoded_bbox=True'


def test_iou_loss_in_a_cascade_stage_names_the_list_index(tmp_path):
    text = f"""
        _base_ = 'mmdet::cascade_rcnn/cascade-rcnn_r50_fpn_1x_coco.py'
        {IMPORT_OURS}
        _heads = [dict(type='Shared2FCBBoxHead', in_channels=256, fc_out_channels=1024,
                       roi_feat_size=7, num_classes=80,
                       bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.] * 4,
                                       target_stds=[0.1, 0.1, 0.2, 0.2]),
                       reg_class_agnostic=True, reg_decoded_bbox=decoded,
                       loss_cls=dict(type='CrossEntropyLoss', loss_weight=1.0),
                       loss_bbox=dict(type='mmdet_losses.DIoULoss', loss_weight=10.0))
                  for decoded in (True, False, True)]
        model = dict(roi_head=dict(bbox_head=_heads))
    """
    problem = only(check_text(tmp_path, text), 'error')
    assert problem.path == 'model.roi_head.bbox_head[1].loss_bbox'


def test_heads_that_decode_boxes_themselves_need_no_flag(tmp_path):
    """GFL and FCOS call loss_bbox on decoded boxes without reading reg_decoded_bbox."""
    gfl = f"""
        _base_ = 'mmdet::gfl/gfl_r50_fpn_1x_coco.py'
        {IMPORT_OURS}
        model = dict(bbox_head=dict(loss_bbox=dict(_delete_=True, type='mmdet_losses.CIoULoss')))
    """
    assert serious(check_text(tmp_path, gfl)) == []
    fcos = f"""
        _base_ = 'mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py'
        {IMPORT_OURS}
        model = dict(bbox_head=dict(loss_bbox=dict(_delete_=True, type='mmdet_losses.IoULoss')))
    """
    assert serious(check_text(tmp_path, fcos)) == []


def test_smooth_l1_on_deltas_is_fine(tmp_path):
    assert serious(check_text(tmp_path, f"""
        _base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'
        {IMPORT_OURS}
        model = dict(bbox_head=dict(
            loss_bbox=dict(_delete_=True, type='mmdet_losses.SmoothL1Loss', beta=0.1)))
    """)) == []


def test_unknown_head_is_a_warning(tmp_path):
    problem = only(check_text(tmp_path, f"""
        {IMPORT_OURS}
        model = dict(type='RetinaNet', bbox_head=dict(
            type='MyOwnHead', loss_bbox=dict(type='mmdet_losses.CIoULoss')))
    """), 'warning')
    assert problem.path == 'model.bbox_head.loss_bbox'
    assert 'MyOwnHead' in problem.message


def test_a_default_scope_that_does_not_import_leaves_unscoped_names_alone(tmp_path):
    """Names of a scope whose package is missing are not judged by mmdet's registry; a box
    loss of ours in a head that cannot be looked up is a warning, not an error."""
    problem = only(check_text(tmp_path, f"""
        default_scope = 'no_such_package'
        {IMPORT_OURS}
        model = dict(type='RetinaNet', bbox_head=dict(
            type='RetinaHead', loss_cls=dict(type='FocalLoss'),
            loss_bbox=dict(type='mmdet_losses.CIoULoss')))
    """))
    assert problem.level == 'warning' and 'cannot be looked up' in problem.message


# ------------------------------------------------------------------------------- box_format

@pytest.mark.parametrize('box_format', ['xywh', 'cxcywh'])
def test_iou_loss_with_another_box_format_in_a_head(tmp_path, box_format):
    problem = only(check_text(tmp_path, f"""
        _base_ = '{RETINANET}'
        model = dict(bbox_head=dict(loss_bbox=dict(box_format='{box_format}')))
    """), 'error')
    assert problem.path == 'model.bbox_head.loss_bbox.box_format'
    assert box_format in problem.message and '(x1, y1, x2, y2)' in problem.message
    assert problem.fix.startswith('remove model.bbox_head.loss_bbox.box_format')


def test_xyxy_box_format_is_fine(tmp_path):
    assert check_text(tmp_path, f"""
        _base_ = '{RETINANET}'
        model = dict(bbox_head=dict(loss_bbox=dict(box_format='xyxy')))
    """) == []


# ------------------------------------------------------------------------------ use_sigmoid

def test_focal_loss_after_delete_without_use_sigmoid(tmp_path):
    """The snippet style of docs/detection.md: _delete_=True drops the base's use_sigmoid."""
    problem = only(check_text(tmp_path, f"""
        _base_ = '{RETINANET}'
        model = dict(bbox_head=dict(loss_cls=dict(
            _delete_=True, type='mmdet_losses.FocalLoss', gamma=2.0, alpha=0.25)))
    """), 'error')
    assert problem.path == 'model.bbox_head.loss_cls'
    assert 'C + 1' in problem.message and 'RetinaHead' in problem.message
    assert problem.fix == 'add use_sigmoid=True to model.bbox_head.loss_cls'


@pytest.mark.parametrize('loss', ['FocalLoss', 'mmdet_losses.VarifocalLoss',
                                  'mmdet_losses.QualityFocalLoss'])
def test_other_sigmoid_losses_without_use_sigmoid(tmp_path, loss):
    problem = only(check_text(tmp_path, f"""
        _base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'
        {IMPORT_OURS}
        model = dict(bbox_head=dict(loss_cls=dict(_delete_=True, type='{loss}')))
    """), 'error')
    assert problem.path == 'model.bbox_head.loss_cls' and 'use_sigmoid=True' in problem.fix


def test_softmax_cross_entropy_without_use_sigmoid_is_fine(tmp_path):
    assert check_text(tmp_path, f"""
        _base_ = '{FASTER_RCNN}'
        model = dict(roi_head=dict(bbox_head=dict(
            loss_cls=dict(_delete_=True, type='mmdet_losses.CrossEntropyLoss'))))
    """) == []


# ------------------------------------------------------------------------------ type names

def test_unscoped_name_that_both_register_is_a_note(tmp_path):
    problem = only(check_text(tmp_path, f"""
        _base_ = '{RETINANET}'
        model = dict(bbox_head=dict(loss_bbox=dict(_delete_=True, type='CIoULoss')))
    """), 'info')
    assert problem.path == 'model.bbox_head.loss_bbox.type'
    assert 'mmdet.models.losses' in problem.message
    assert "type='mmdet_losses.CIoULoss'" in problem.fix
    assert exit_status([problem], strict=True) == 0


def test_unscoped_name_only_we_register_is_an_error(tmp_path):
    problem = only(check_text(tmp_path, f"""
        _base_ = '{RETINANET}'
        model = dict(bbox_head=dict(loss_bbox=dict(_delete_=True, type='WIoULoss')))
    """), 'error')
    assert problem.fix == "type='mmdet_losses.WIoULoss'"


def test_misspelt_scoped_type_suggests_close_names(tmp_path):
    problem = only(check_text(tmp_path, f"""
        _base_ = '{RETINANET}'
        model = dict(bbox_head=dict(loss_bbox=dict(_delete_=True, type='mmdet_losses.CIOULoss')))
    """), 'error')
    assert problem.path == 'model.bbox_head.loss_bbox.type'
    assert problem.fix.startswith("type='mmdet_losses.CIoULoss'")


def test_misspelt_unscoped_loss_suggests_close_names(tmp_path):
    problem = only(check_text(tmp_path, """
        _base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'
        model = dict(bbox_head=dict(loss_cls=dict(type='FocallLoss')))
    """), 'error')
    assert "'FocalLoss'" in problem.fix


# -------------------------------------------------------------------------- report and CLI

def test_check_config_takes_a_loaded_config_and_reports_head_then_loss(tmp_path):
    cfg = load_config(write(tmp_path, f"""
        _base_ = '{RETINANET}'
        model = dict(bbox_head=dict(
            reg_decoded_bbox=False,
            loss_cls=dict(_delete_=True, type='mmdet_losses.FocalLoss'),
            loss_bbox=dict(box_format='xywh')))
    """))
    problems = check_config(cfg)
    assert [p.path for p in problems] == ['model.bbox_head.loss_bbox',
                                          'model.bbox_head.loss_cls',
                                          'model.bbox_head.loss_bbox.box_format']
    text = format_problems(problems, 'cfg.py')
    assert text.splitlines()[-1] == 'cfg.py: 3 error(s)'
    assert '    fix: set model.bbox_head.reg_decoded_bbox=True' in text


def test_exit_status():
    error = Problem('error', 'a', 'b', 'c')
    warning = Problem('warning', 'a', 'b', 'c')
    info = Problem('info', 'a', 'b', 'c')
    assert exit_status([]) == exit_status([info], strict=True) == 0
    assert exit_status([warning]) == 0 and exit_status([warning], strict=True) == 1
    assert exit_status([error]) == 1


def test_cli_clean_config_exits_zero(capsys):
    assert main(['check', RETINANET]) == 0
    assert capsys.readouterr().out.strip() == f'{RETINANET}: no problems found'


def test_cli_error_exits_one_and_names_key_and_fix(tmp_path, capsys):
    config = write(tmp_path, f"""
        _base_ = '{RETINANET}'
        model = dict(bbox_head=dict(reg_decoded_bbox=False))
    """)
    assert main(['check', config]) == 1
    out = capsys.readouterr().out
    assert 'error: model.bbox_head.loss_bbox: ' in out
    assert 'fix: set model.bbox_head.reg_decoded_bbox=True' in out


def test_cli_strict_fails_on_warnings_only(tmp_path, capsys):
    config = write(tmp_path, f"""
        {IMPORT_OURS}
        model = dict(bbox_head=dict(type='MyOwnHead', loss_bbox=dict(type='mmdet_losses.GIoULoss')))
    """)
    assert main(['check', config]) == 0
    assert main(['check', config, '--strict']) == 1
    assert 'warning: model.bbox_head.loss_bbox' in capsys.readouterr().out


def test_cli_config_that_does_not_load_exits_two(tmp_path, capsys):
    assert main(['check', str(tmp_path / 'missing.py')]) == 2
    assert 'does not load' in capsys.readouterr().err


def test_cli_as_python_dash_m(tmp_path):
    """The command a user types, in a fresh process (mmdet:: base, custom_imports)."""
    config = write(tmp_path, f"""
        _base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'
        {IMPORT_OURS}
        model = dict(bbox_head=dict(loss_bbox=dict(_delete_=True, type='mmdet_losses.CIOULoss')))
    """)
    run = subprocess.run([sys.executable, '-m', 'mmdet_losses', 'check', config],
                         capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 1, run.stdout + run.stderr
    assert 'error: model.bbox_head.loss_bbox.type: mmdet_losses.CIOULoss' in run.stdout
    assert "fix: type='mmdet_losses.CIoULoss'" in run.stdout


# ------------------------------------------------------------------ registry: build-time typo

def test_building_a_misspelt_scoped_type_suggests_close_names():
    from mmdet.registry import MODELS as MMDET_MODELS
    with pytest.raises(KeyError, match=r'did you mean mmdet_losses\.CIoULoss'):
        MMDET_MODELS.build(dict(type='mmdet_losses.CIOULoss'))
    with pytest.raises(KeyError, match=r'mmdet_losses\.Nothing is not registered'):
        MMDET_MODELS.build(dict(type='mmdet_losses.Nothing'))


def test_registry_probes_and_other_names_keep_mmengines_behaviour():
    from mmdet.registry import MODELS as MMDET_MODELS
    from mmengine.registry import MODELS as ROOT

    import mmdet_losses
    from mmdet_losses.registry import MODELS
    assert 'mmdet_losses.CIOULoss' not in MMDET_MODELS and 'CIOULoss' not in MODELS
    assert MMDET_MODELS.get('mmdet_losses.CIOULoss') is None
    assert 'mmdet_losses.CIoULoss' in ROOT
    assert MMDET_MODELS.get('mmdet_losses.losses.iou.CIoULoss') is mmdet_losses.CIoULoss
    assert type(MMDET_MODELS.build(dict(type='RetinaHead', num_classes=2, in_channels=8,
                                        feat_channels=8, stacked_convs=1))).__name__ == \
        'RetinaHead'
    with pytest.raises(KeyError, match='not in the mmdet::model registry'):
        MMDET_MODELS.build(dict(type='NoSuchHead'))


# --------------------------------------------------------------------- tools/train.py --strict

def _train_module():
    sys.path.insert(0, osp.join(ROOT, 'tests'))
    try:
        from _integration_utils import load_tool
    finally:
        sys.path.remove(osp.join(ROOT, 'tests'))
    return load_tool('train')


def test_train_strict_stops_before_training(tmp_path, capsys, monkeypatch):
    train = _train_module()
    config = write(tmp_path, f"""
        _base_ = '{RETINANET}'
        model = dict(bbox_head=dict(reg_decoded_bbox=False))
    """)
    started = []
    monkeypatch.setattr(train, 'run_train', started.append)  # the check comes first
    with pytest.raises(SystemExit) as exit_info:
        train.main([config, '--strict', '--work-dir', str(tmp_path / 'work')])
    assert exit_info.value.code != 0 and started == []
    assert '[check] error: model.bbox_head.loss_bbox' in capsys.readouterr().out


def test_train_without_strict_prints_and_goes_on(tmp_path, capsys):
    train = _train_module()
    config = write(tmp_path, f"""
        _base_ = '{RETINANET}'
        model = dict(bbox_head=dict(loss_cls=dict(_delete_=True, type='mmdet_losses.FocalLoss')))
    """)
    cfg = train.build_config(train.parse_args([config]))
    problems = train.check_config(cfg, strict=False)
    assert [p.path for p in problems] == ['model.bbox_head.loss_cls']
    assert '[check] error: model.bbox_head.loss_cls' in capsys.readouterr().out
