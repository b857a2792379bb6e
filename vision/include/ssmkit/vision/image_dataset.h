// Labelled image sets held in memory at model resolution: the idx files of MNIST / Fashion-MNIST (gzip or
// raw, magic numbers and sizes checked) and torchvision's ImageFolder layout (one subfolder per class, class
// names sorted, files of the decodable extensions found recursively in torchvision's order). Samples are
// stored after the deterministic part of the eval transform (prepare_image: channels, resize, crop, border)
// as U8, so an epoch costs no decoding; batches are normalised on the fly (or augmented, augment.h).
// Not here: lazy loading of sets larger than memory, the training augmentation itself.
// Shapes: N samples, C channels, S x S model input, B batch.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "ssmkit/core/random.h"
#include "ssmkit/core/tensor.h"
#include "ssmkit/vision/preprocess.h"

namespace ssmkit::vision {

struct ImageDataset {
  core::Tensor images;               // (N,C,S,S) U8 planar, prepare_image's output
  core::Tensor labels;               // (N) I64 class indices in [0, classes.size())
  std::vector<std::string> classes;  // class names in index order
  std::vector<std::string> files;    // the files the samples came from (the idx pair, or one per image)
  std::string origin;                // the path the set was opened from (for messages)

  int64_t size() const { return labels.defined() ? labels.numel() : 0; }
  int64_t num_classes() const { return static_cast<int64_t>(classes.size()); }
};

// ---------------------------------------------------------------------------------------------------------
// idx files (http://yann.lecun.com/exdb/mnist/ layout: 0x00 0x00 type ndim, ndim big-endian u32 sizes, data)

// Reads an idx file of unsigned bytes (type 0x08), gzip-compressed or not -> U8 tensor of the header's dims.
// Errors name the file: bad magic, unsupported type, data shorter or longer than the header says, bad gzip.
core::Tensor read_idx(const std::string& path);
// Writes a U8 tensor (1 to 4 dims) as an idx file, gzip-compressed when `gzip` (atomically).
void write_idx(const std::string& path, const core::Tensor& data, bool gzip);

// The images/labels pair of one split. `path` is a folder holding {train,t10k}-{images-idx3,labels-idx1}-ubyte
// (optionally .gz), with split "train" or "test" (= t10k), or an images file (labels: the same name with
// images-idx3 -> labels-idx1). Throws Error naming what is missing.
struct IdxPair {
  std::string images, labels;
};
IdxPair find_idx_pair(const std::string& path, const std::string& split);
// Whether `path` is an idx images file or a folder with idx files of the split.
bool is_idx_source(const std::string& path, const std::string& split = "train");

// Loads an idx pair (images (N,H,W) magic 0x00000803, labels (N) magic 0x00000801, same N) and applies
// prepare_image (28x28 Fashion-MNIST with Preprocess::fashion_mnist(): the 2-pixel zero border only).
// classes: names for the labels; empty -> a classes.txt beside the images (one name per line), else the
// Fashion-MNIST names when the folder's path mentions "fashion" and there are 10 classes, else "0".."K-1".
ImageDataset load_idx_dataset(const IdxPair& files, const Preprocess& p, std::vector<std::string> classes = {});

// The ten Fashion-MNIST class names (T-shirt/top ... Ankle boot).
std::vector<std::string> fashion_mnist_classes();

// ---------------------------------------------------------------------------------------------------------
// ImageFolder

// Every file under `root` (recursively, following torchvision's walk: folders in sorted path order, files
// sorted within each) whose extension has_image_extension() accepts. Names starting with '.' are skipped.
std::vector<std::string> list_image_files(const std::string& root);

// root/<class>/**/<image>: classes = sorted subfolder names; samples in class order, then list_image_files
// order. Throws Error naming root when it has no class folders or a class folder has no image.
struct ImageFolderIndex {
  std::vector<std::string> classes;
  std::vector<std::string> paths;
  std::vector<int64_t> labels;
};
ImageFolderIndex scan_image_folder(const std::string& root);

// Decodes and prepares every image of the folder (in parallel). A file that cannot be decoded throws Error
// "<file>: ..." (training sets must be clean; predict goes on past bad files instead).
// progress(done, total) is called now and then from the calling thread when given.
ImageDataset load_image_folder(const std::string& root, const Preprocess& p,
                               const std::function<void(int64_t, int64_t)>& progress = {});

// ---------------------------------------------------------------------------------------------------------
// Any source

// An idx folder/file (split "train" or "test") or an ImageFolder root.
ImageDataset open_image_dataset(const std::string& path, const std::string& split, const Preprocess& p,
                                const std::function<void(int64_t, int64_t)>& progress = {});

// The samples idx[0..n) as a new set (images copied).
ImageDataset subset(const ImageDataset& d, const std::vector<int64_t>& idx);
// A seeded random split: the last `fraction` of a shuffled order becomes the second set (each at least one
// sample when fraction is in (0,1)).
std::pair<ImageDataset, ImageDataset> split_dataset(const ImageDataset& d, double fraction, uint64_t seed);

// SHA-256 (hex) of the set's files: for one file its digest (what sha256sum prints), for several the digest
// of the text "<digest>  <file name>\n" over the files in order.
std::string dataset_sha256(const ImageDataset& d);

// Samples idx[0..B) normalised -> out (B,C,S,S) F32 (no augmentation).
core::Tensor gather_batch(const ImageDataset& d, const int64_t* idx, int64_t B, const Preprocess& p);

}  // namespace ssmkit::vision
