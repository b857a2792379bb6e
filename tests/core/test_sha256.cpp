// SHA-256 (core/io/sha256.h) against the FIPS 180-4 / NIST test vectors (empty, one block, two blocks, a million
// 'a's), and the error for an unreadable file.
#include <string>

#include "gradcheck.h"
#include "ssmkit/core/io/sha256.h"

using namespace ssmkit;
using test::expect_error;

TEST(Sha256, KnownVectorsAndErrors) {
  EXPECT_EQ(core::sha256_hex("", 0), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(core::sha256_hex("abc", 3), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const std::string two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  EXPECT_EQ(core::sha256_hex(two_blocks.data(), two_blocks.size()),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  const std::string million(1000000, 'a');
  EXPECT_EQ(core::sha256_hex(million.data(), million.size()),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  expect_error([] { core::sha256_file("/nonexistent/ssmkit.csv"); }, "/nonexistent/ssmkit.csv: cannot open");
}
