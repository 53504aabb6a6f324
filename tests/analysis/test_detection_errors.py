import math

import numpy as np
import pytest
from mmdet.datasets.api_wrappers import COCO

from mmdet_ghm.analysis.detection_errors import (ap_and_recall, check_iou_thresholds,
                                                 to_coco_results)


def make_gt(boxes_per_image, crowd=()):
    """A COCO ground truth: ``{image id: [xywh, ...]}``, one category (id 7)."""
    images, anns = [], []
    for img_id, boxes in boxes_per_image.items():
        images.append(dict(id=img_id, width=100, height=100, file_name=f'{img_id}.png'))
        for box in boxes:
            anns.append(dict(id=len(anns) + 1, image_id=img_id, category_id=7, bbox=list(box),
                             area=box[2] * box[3], iscrowd=int(tuple(box) in crowd)))
    gt = COCO()
    gt.dataset = dict(images=images, annotations=anns, categories=[dict(id=7, name='crown')])
    gt.createIndex()
    return gt


def det(img_id, box, score):
    return dict(image_id=img_id, category_id=7, bbox=list(box), score=score)


def test_exact_boxes_score_one_at_every_threshold():
    gt = make_gt({1: [(10, 10, 20, 20), (50, 50, 10, 10)]})
    result = ap_and_recall(gt, [det(1, (10, 10, 20, 20), 0.9), det(1, (50, 50, 10, 10), 0.8)])
    assert result['ap'] == pytest.approx([1.0] * 4)
    assert result['recall'] == pytest.approx([1.0] * 4)
    assert result['num_objects'] == 2 and result['num_detections'] == 2


def test_a_loose_box_counts_only_at_the_loose_thresholds():
    # IoU of (5, 0, 5, 10) with (0, 0, 10, 10): 50 / 100 = 0.5; of (6, 0, 4, 10): 0.4
    gt = make_gt({1: [(0, 0, 10, 10)]})
    result = ap_and_recall(gt, [det(1, (6, 0, 4, 10), 0.9)], iou_thrs=(0.1, 0.3, 0.5, 0.75))
    assert result['ap'] == pytest.approx([1.0, 1.0, 0.0, 0.0])
    assert result['recall'] == pytest.approx([1.0, 1.0, 0.0, 0.0])


def test_background_ranked_first_costs_ap_at_every_threshold_not_recall():
    gt = make_gt({1: [(0, 0, 10, 10), (50, 50, 10, 10)]})
    detections = [det(1, (80, 80, 10, 10), 0.95), det(1, (0, 0, 10, 10), 0.9),
                  det(1, (50, 50, 10, 10), 0.8)]
    result = ap_and_recall(gt, detections, iou_thrs=(0.1, 0.5))
    # precision 1/2 at recall 1/2, 2/3 at recall 1: interpolated 2/3 everywhere
    assert result['ap'] == pytest.approx([2 / 3, 2 / 3], abs=1e-6)
    assert result['recall'] == pytest.approx([1.0, 1.0])
    # the box at (80, 80) overlaps no crown: dropping it restores the AP
    assert result['ap_without_background'] == pytest.approx([1.0, 1.0])
    assert result['num_background'] == 1
    # the top 2 boxes: the background box, then one crown
    assert result['top_boxes'] == dict(hit=0.5, duplicate=0.0, loose=0.0, crowd=0.0,
                                       background=0.5)


def test_duplicates_and_loose_boxes_are_false_positives_but_not_background():
    gt = make_gt({1: [(0, 0, 10, 10), (50, 50, 10, 10)], 2: [(0, 0, 10, 10)]})
    detections = [det(1, (0, 0, 10, 10), 0.9), det(1, (1, 0, 10, 10), 0.8),  # IoU 0.82
                  det(1, (50, 50, 10, 10), 0.7),
                  det(2, (6, 0, 4, 10), 0.9), det(2, (0, 0, 10, 10), 0.6)]  # IoU 0.4, 1
    result = ap_and_recall(gt, detections, iou_thrs=(0.5,))
    assert result['num_background'] == 0
    assert result['ap_without_background'] == result['ap'] and result['ap'][0] < 0.99
    # top 2 of image 1: a hit and its duplicate; top 1 of image 2: the loose box
    assert result['top_boxes'] == pytest.approx(dict(hit=1 / 3, duplicate=1 / 3, loose=1 / 3,
                                                     crowd=0.0, background=0.0))


def test_crowd_regions_are_ignored_and_images_without_detections_miss_their_objects():
    crowd = (60, 60, 30, 30)
    gt = make_gt({1: [(0, 0, 10, 10), crowd], 2: [(20, 20, 10, 10)]}, crowd={crowd})
    detections = [det(1, (62, 62, 26, 26), 0.99), det(1, (0, 0, 10, 10), 0.5)]
    result = ap_and_recall(gt, detections, iou_thrs=(0.5,))
    assert result['num_objects'] == 2  # the crowd region is not an object
    assert result['recall'] == pytest.approx([0.5])  # image 2's crown is missed
    assert result['ap'] == pytest.approx([0.5], abs=0.01)  # the crowd hit is no false positive
    assert result['num_background'] == 0
    # image 1's top box is the crowd hit; image 2 has no box at all
    assert result['top_boxes'] == dict(hit=0.0, duplicate=0.0, loose=0.0, crowd=0.5,
                                       background=0.0)
    only_first = ap_and_recall(gt, detections, iou_thrs=(0.5,), img_ids=[1])
    assert only_first['ap'] == pytest.approx([1.0]) and only_first['num_objects'] == 1


def test_max_dets_keeps_the_highest_scores():
    gt = make_gt({1: [(0, 0, 10, 10), (50, 50, 10, 10)]})
    detections = [det(1, (0, 0, 10, 10), 0.9), det(1, (50, 50, 10, 10), 0.1)]
    assert ap_and_recall(gt, detections, iou_thrs=(0.5,), max_dets=1)['recall'] == [0.5]


def test_no_detections_miss_everything():
    gt = make_gt({1: [(0, 0, 10, 10)]})
    result = ap_and_recall(gt, [], iou_thrs=(0.5,))
    assert result['ap'] == [0.0] and result['recall'] == [0.0]
    assert result['ap_without_background'] == [0.0]
    assert set(result['top_boxes'].values()) == {0.0}
    empty = ap_and_recall(make_gt({1: []}), [], iou_thrs=(0.5,))
    assert math.isnan(empty['ap'][0]) and empty['num_objects'] == 0


@pytest.mark.parametrize('thrs, match', [((0.5, 0.1), 'increasing'), ((0.0,), r'\(0, 1\]'),
                                         ((), 'increasing'), ((0.5, True), 'True')])
def test_bad_thresholds_are_named(thrs, match):
    with pytest.raises(ValueError, match=match):
        check_iou_thresholds(thrs)


def test_bad_inputs_are_named():
    gt = make_gt({1: [(0, 0, 10, 10)]})
    with pytest.raises(ValueError, match=r'not in the ground truth: \[3\]'):
        ap_and_recall(gt, [det(3, (0, 0, 10, 10), 0.9)])
    with pytest.raises(ValueError, match='max_dets.*0'):
        ap_and_recall(gt, [], max_dets=0)


def test_to_coco_results_converts_corners_and_labels():
    results = to_coco_results(4, np.array([[10, 20, 30, 60]]), np.array([0.5]), np.array([1]),
                              cat_ids=[3, 9])
    assert results == [dict(image_id=4, category_id=9, bbox=[10.0, 20.0, 20.0, 40.0],
                            score=0.5)]
    with pytest.raises(ValueError, match='1 boxes, 2 scores'):
        to_coco_results(4, np.zeros((1, 4)), np.zeros(2), np.zeros(1), cat_ids=[3])
