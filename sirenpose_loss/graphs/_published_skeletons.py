"""Keypoint layouts as their datasets publish them.

The COCO and AP-10K edge lists are typed exactly as the datasets' annotation files give them:
the ``skeleton`` field of a COCO-format category is **1-based** (keypoint 1 is the first entry
of ``keypoints``). :mod:`.skeletons` converts them to the 0-based ``edge_index`` the losses and
torch-geometric use. Edge order and direction are kept as published.
"""

# COCO 2017 person keypoints: the "person" category of the COCO keypoint annotation files
# (annotations/person_keypoints_{train,val}2017.json), fields `keypoints` and `skeleton`.
COCO17_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)
COCO17_SKELETON_1BASED = (
    (16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13), (6, 7), (6, 8),
    (7, 9), (8, 10), (9, 11), (2, 3), (1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7),
)

# AP-10K (Yu et al., "AP-10K: A Benchmark for Animal Pose Estimation in the Wild", NeurIPS 2021
# Datasets and Benchmarks; github.com/AlexTheBad/AP-10K): fields `keypoints` and `skeleton` of
# the categories in its COCO-format annotation files (ap10k-{train,val,test}-split*.json; every
# category shares them). 1-based, like COCO.
AP10K17_NAMES = (
    "left_eye", "right_eye", "nose", "neck", "root_of_tail",
    "left_shoulder", "left_elbow", "left_front_paw",
    "right_shoulder", "right_elbow", "right_front_paw",
    "left_hip", "left_knee", "left_back_paw",
    "right_hip", "right_knee", "right_back_paw",
)
AP10K17_SKELETON_1BASED = (
    (1, 2), (1, 3), (2, 3), (3, 4), (4, 5), (4, 6), (6, 7), (7, 8), (4, 9), (9, 10), (10, 11),
    (5, 12), (12, 13), (13, 14), (5, 15), (15, 16), (16, 17),
)

# 21-point hand: the CMU Panoptic HandDB / OpenPose layout (Simon et al., CVPR 2017), which is
# also the order of COCO-WholeBody's hand keypoints and of MediaPipe Hands' landmarks: the wrist,
# then four joints per finger from the palm to the tip (thumb, index, middle, ring, pinky).
# No annotation file publishes a 1-based list for it; the bones are the 20 finger chains from
# the wrist (COCO-WholeBody's hand skeleton). MediaPipe also draws the palm edges 5-9, 9-13 and
# 13-17, which are not bones and are left out. 0-based.
_FINGER_JOINTS = {
    "thumb": ("cmc", "mcp", "ip", "tip"),
    "index": ("mcp", "pip", "dip", "tip"),
    "middle": ("mcp", "pip", "dip", "tip"),
    "ring": ("mcp", "pip", "dip", "tip"),
    "pinky": ("mcp", "pip", "dip", "tip"),
}
HAND21_NAMES = ("wrist",) + tuple(f"{finger}_{joint}" for finger, joints in _FINGER_JOINTS.items()
                                  for joint in joints)
HAND21_SKELETON_0BASED = tuple(
    (0 if j == 0 else 1 + 4 * f + j - 1, 1 + 4 * f + j) for f in range(5) for j in range(4))
