import numpy as np

from napari_dendrite_panoptic.inference.zlink import link_planes


def test_overlapping_instances_in_neighbouring_planes_become_one_spine():
    planes = np.zeros((3, 20, 20), dtype=np.int32)
    planes[0, 2:6, 2:6] = 1  # spine A in planes 0 and 1
    planes[1, 3:7, 3:7] = 1
    planes[1, 12:16, 12:16] = 2  # spine B appears in plane 1 only
    planes[2, 2:4, 15:18] = 1  # spine C far from anything before
    labels, scores = link_planes(planes, [[0.9], [0.8, 0.7], [0.6]], min_iou=0.2)
    assert labels.dtype == np.uint32
    assert labels[0, 3, 3] == labels[1, 5, 5] != 0
    assert len(np.unique(labels[labels > 0])) == 3
    assert sorted(np.unique(labels[labels > 0]).tolist()) == [1, 2, 3]
    assert scores[int(labels[0, 3, 3])] == 0.9  # the best score of the linked planes


def test_weak_overlap_does_not_link():
    planes = np.zeros((2, 20, 20), dtype=np.int32)
    planes[0, 0:10, 0:10] = 1
    planes[1, 9:19, 9:19] = 1  # 1 px of overlap
    labels, _ = link_planes(planes, [[1.0], [1.0]], min_iou=0.2)
    assert len(np.unique(labels[labels > 0])) == 2


def test_a_spine_missed_in_one_plane_keeps_its_id_across_the_gap():
    planes = np.zeros((4, 20, 20), dtype=np.int32)
    planes[0, 2:6, 2:6] = 1  # spine A in planes 0 and 2, missed in plane 1
    planes[2, 2:6, 3:7] = 1
    planes[0, 12:16, 12:16] = 2  # spine B in plane 0, then not before plane 3: a new spine
    planes[3, 12:16, 12:16] = 1
    labels, _ = link_planes(planes, [[1.0, 1.0], [], [1.0], [1.0]], min_iou=0.2)
    assert labels[0, 3, 3] == labels[2, 3, 5] != 0
    assert labels[3, 13, 13] not in (0, labels[0, 13, 13])  # a gap of two planes is not bridged
    assert len(np.unique(labels[labels > 0])) == 3


def test_out_of_focus_planes_of_a_spine_are_dropped_and_its_brightest_plane_kept():
    from napari_dendrite_panoptic.inference.zlink import trim_out_of_focus

    spines = np.zeros((4, 10, 10), np.uint32)
    spines[0:4, 2:5, 2:5] = 1  # seen in 4 planes, in focus in plane 1 (and nearly in plane 2)
    spines[3, 7:9, 7:9] = 2  # a second spine in one plane only
    brightness = {0: 30.0, 1: 100.0, 2: 95.0, 3: 40.0}
    planes = {z: np.full((10, 10), brightness[z]) for z in range(4)}
    trim_out_of_focus(spines, planes.__getitem__, 0.9)
    assert [bool((spines[z] == 1).any()) for z in range(4)] == [False, True, True, False]
    assert (spines[3] == 2).sum() == 4  # the brightest (only) plane of a spine stays
    untouched = np.zeros((1, 4, 4), np.uint32)
    untouched[0, 1, 1] = 1
    assert trim_out_of_focus(untouched.copy(), lambda z: np.ones((4, 4)), 0.9).sum() == 1
