#!/usr/bin/python3
# Makes the small image fixtures of tests/vision/test_preprocess.cpp with Pillow (Debian python3-pil 9.4):
# one synthetic 40x30 RGB picture in every decoded format, gray / gray+alpha / RGBA / palette variants, broken
# files, and Pillow's own results of the eval-transform steps (bicubic resizes, convert('L')) that the C++
# resize must reproduce byte for byte; plus fashion_samples/: the first test image of each Fashion-MNIST class
# as a 28x28 PNG (for demos of a Fashion-MNIST model). Run from this folder: /usr/bin/python3 make_fixtures.py
# Not a test dependency: the outputs are committed; the tests never run Python.
import gzip
import math
import os
from PIL import Image

W, H = 40, 30


def pixel(x, y):
    # smooth ramps + a ring + a hard edge: exercises the bicubic overshoot and the antialiasing
    r = int(255 * x / (W - 1))
    g = int(255 * y / (H - 1))
    d = math.hypot(x - 14.3, y - 11.7)
    b = 230 if 5.0 < d < 9.0 else (40 if x > 30 else 120)
    return (r, g, b)


rgb = Image.new("RGB", (W, H))
rgb.putdata([pixel(x, y) for y in range(H) for x in range(W)])
rgb.save("rgb_40x30.png")
rgb.save("rgb_40x30.jpg", quality=95)
Image.open("rgb_40x30.jpg").save("pil_decoded_jpg.png")  # Pillow's decoding of the JPEG (libjpeg-turbo)
rgb.save("rgb_40x30.bmp")
rgb.save("rgb_40x30.tif")
rgb.save("rgb_40x30.webp", lossless=True)

gray = rgb.convert("L")
gray.save("gray_40x30.png")
la = Image.merge("LA", (gray, Image.new("L", (W, H), 128)))
la.save("gray_alpha_40x30.png")
rgba = rgb.copy()
rgba.putalpha(Image.new("L", (W, H), 77))
rgba.save("rgba_40x30.png")
rgb.convert("P", palette=Image.ADAPTIVE, colors=16).save("palette_40x30.png")

# Pillow's results of the transform steps
rgb.resize((24, 18), Image.BICUBIC).save("pil_bicubic_24x18.png")   # downscale (timm Resize(18) of 40x30)
rgb.resize((57, 43), Image.BICUBIC).save("pil_bicubic_57x43.png")   # upscale, non-integer factors
rgb.resize((13, 30), Image.BICUBIC).save("pil_bicubic_13x30.png")   # width only
gray.resize((7, 5), Image.BICUBIC).save("pil_gray_bicubic_7x5.png")  # strong downscale, one channel

# broken files
data = open("rgb_40x30.png", "rb").read()
open("truncated.png", "wb").write(data[: len(data) // 2])
jpg = open("rgb_40x30.jpg", "rb").read()
open("truncated.jpg", "wb").write(jpg[: len(jpg) * 2 // 3])
open("not_an_image.jpg", "w").write("this is a text file, not a JPEG\n")
open("empty.png", "wb").close()

# the first t10k image of each class (Fashion-MNIST, MIT licence: ../../../../shared/data/vision/fashion_mnist)
fm = "../../../../shared/data/vision/fashion_mnist"
names = ["tshirt_top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle_boot"]
images = gzip.open(fm + "/t10k-images-idx3-ubyte.gz").read()[16:]
labels = gzip.open(fm + "/t10k-labels-idx1-ubyte.gz").read()[8:]
os.makedirs("fashion_samples", exist_ok=True)
for k, name in enumerate(names):
    i = labels.index(bytes([k]))
    Image.frombytes("L", (28, 28), images[i * 784:(i + 1) * 784]).save("fashion_samples/%d_%s_t10k_%d.png" % (k, name, i))
