import pytest

from bcssl_mm.analysis import format_table
from conftest import load_tool


def test_plain_table_aligns_columns_and_strips_trailing_blanks():
    text = format_table(('model', 'img/s', 'note'),
                        [('a', 1.5, None), ('long name', '12.0', '')],
                        notes=['* a note'])
    assert text.splitlines() == [
        'model     | img/s | note',
        '----------+-------+-----',
        'a         | 1.5   | -',
        'long name | 12.0  |',
        '* a note',
    ]


def test_grid_table_prints_tools_test_coco_table():
    # tools/test.py's AP table is a right-aligned grid table
    coco_table = load_tool('test.py').format_coco_table
    metrics = {
        'coco/bbox_mAP': 0.4567,
        'coco/bbox_mAP_50': 0.6,
        'coco/bbox_mAP_75': 0.5,
        'coco/bbox_mAP_s': 0.25,
        'coco/bbox_mAP_m': 0.5,
        'coco/bbox_mAP_l': 0.625,
        'coco/segm_mAP': 0.4
    }
    rows = [['bbox', '45.7', '60.0', '50.0', '25.0', '50.0', '62.5'],
            ['segm', '40.0', '-', '-', '-', '-', '-']]
    header = ['', 'AP', 'AP50', 'AP75', 'APs', 'APm', 'APl']
    assert format_table(header, rows, align='>', style='grid') == \
        coco_table(metrics)


def test_markdown_table_marks_alignment_and_escapes_pipes():
    text = format_table(('model', 'top-1'), [('a|b', 1.5), ('c', None)],
                        align=('<', '>'),
                        style='markdown',
                        notes=['* a note'])
    assert text.splitlines() == [
        '| model | top-1 |',
        '|-------|------:|',
        r'| a\|b  |   1.5 |',
        '| c     |     - |',
        '',
        '* a note',
    ]


def test_per_column_alignment():
    assert format_table(('a', 'b'), [('x', 1)], align=('<', '>'),
                        style='grid').splitlines()[3] == '| x | 1 |'


@pytest.mark.parametrize('kwargs, match', [
    (dict(rows=[('x', )]), 'row 0 has 1 cells, the header 2'),
    (dict(rows=[], style='html'), "style 'html'"),
    (dict(rows=[], align='^'), 'align'),
])
def test_bad_tables_are_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        format_table(('a', 'b'), **kwargs)
