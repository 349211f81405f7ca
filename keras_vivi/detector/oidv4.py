"""Open Images V4 identities of the classes MediaPipe's OIDv4 SSD detects.

Labels are the ids of the Open Images V4 boxable label map (`oid_v4_label_map.pbtxt` of the TF Object
Detection API, ids 1..601), the label space of TF-Hub's `openimages_v4` detectors, so datasets prepared
with either detector share class labels. Names (`detection_class_names`) are the Freebase MIDs, as
TF-Hub's detectors output them; entities are the display names.
"""

# display name → (Open Images V4 label id, MID)
OIDV4_CLASSES = {
    "Bicycle": (40, "/m/0199g"),
    "Boot": (45, "/m/01b638"),
    "Laptop": (55, "/m/01c648"),
    "Person": (69, "/m/01g317"),
    "Chair": (97, "/m/01mzpv"),
    "Cattle": (115, "/m/01xq0k1"),
    "Desk": (121, "/m/01y9k5"),
    "Cat": (122, "/m/01yrx"),
    "Computer mouse": (128, "/m/020lf"),
    "Computer monitor": (135, "/m/02522"),
    "Box": (136, "/m/025dyy"),
    "Mug": (171, "/m/02jvh9"),
    "Coffee cup": (179, "/m/02p5f1q"),
    "Stationary bicycle": (243, "/m/03kt2w"),
    "Table": (281, "/m/04bcr3"),
    "Bottle": (286, "/m/04dr76w"),
    "High heels": (355, "/m/06k2mb"),
    "Vehicle": (404, "/m/07yv9"),
    "Footwear": (434, "/m/09j5n"),
    "Dog": (446, "/m/0bt9lr"),
    "Book": (447, "/m/0bt_c3"),
    "Camera": (499, "/m/0dv5r"),
    "Car": (571, "/m/0k4j"),
}
NUM_OIDV4_LABELS = 601  # label ids run 1..601 (0 is background)
