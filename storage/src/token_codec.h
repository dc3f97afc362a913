#pragma once
// The compact BLOB format of token records (routing + logprobs), one BLOB per committed batch.
//
// Format version 1, little-endian:
//   u8 version (=1), u8 flags (bit 0: expert ids stored as u8), u32 tokenCount, then per token:
//   i32 tokenId, u32 textOffset, u32 textLength, u8 hasLogprob, [f32 logprob],
//   u8 topCount, topCount x (i32 tokenId, f32 logprob, u16 textBytes, bytes),
//   u16 moeLayers, u8 topK, moeLayers*topK expert ids (u8 or u16), moeLayers*topK f16 weights.
// For DeepSeek-V2-Lite (26 MoE layers, top-6 of 64 experts) routing costs 468 bytes per token.

#include "dsv2/storage/types.h"

#include <cstdint>
#include <span>
#include <vector>

namespace dsv2::storage::detail {

constexpr std::uint8_t kTokenBlobVersion = 1;

std::vector<std::uint8_t> encodeTokenRecords(std::span<const TokenRecord> tokens);
// Throws StorageException(InvalidData) on a malformed or newer-format BLOB.
std::vector<TokenRecord> decodeTokenRecords(std::span<const std::uint8_t> blob);

// Encoded size of one record, for the writer's "flush when the buffer is large" rule.
std::size_t encodedSize(const TokenRecord& token);

// IEEE 754 binary16 <-> binary32 (round to nearest even).
std::uint16_t floatToHalf(float value);
float halfToFloat(std::uint16_t half);
inline float roundToHalf(float value) { return halfToFloat(floatToHalf(value)); }

}  // namespace dsv2::storage::detail
