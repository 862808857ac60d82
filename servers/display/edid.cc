#include "servers/display/edid.h"

#include <cstddef>
#include <cstring>

namespace cellvisor {
namespace {

// Reduced blanking (CVT-RB's fixed horizontal blank, a short vertical
// one): a timing every driver accepts for a virtual panel.
constexpr uint32_t H_BLANK = 160, H_FRONT = 48, H_SYNC = 32;
constexpr uint32_t V_BLANK = 23, V_FRONT = 3, V_SYNC = 5;
constexpr uint32_t REFRESH_HZ = 60;
// A panel of about 96 dots per inch, for drivers that compute a DPI.
constexpr uint32_t millimetres(uint32_t pixels) {
  return pixels * 254 / 960;
}

void putDescriptor(Edid& edid, size_t at, uint8_t tag, const uint8_t (&payload)[13]) {
  uint8_t header[5] = {0, 0, 0, tag, 0};
  std::memcpy(&edid[at], header, sizeof(header));
  std::memcpy(&edid[at + 5], payload, sizeof(payload));
}

}  // namespace

Edid makeEdid(uint32_t width, uint32_t height) {
  Edid edid{};
  const uint8_t header[] = {0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00};
  std::memcpy(&edid[0], header, sizeof(header));
  // Manufacturer "CVS" (three 5-bit letters, big-endian), product 0x1111.
  uint16_t maker = ('C' - '@') << 10 | ('V' - '@') << 5 | ('S' - '@');
  edid[8] = static_cast<uint8_t>(maker >> 8);
  edid[9] = static_cast<uint8_t>(maker);
  edid[10] = 0x11;
  edid[11] = 0x11;
  edid[16] = 1;  // Week of manufacture.
  edid[17] = 2026 - 1990;
  edid[18] = 1;  // EDID 1.4.
  edid[19] = 4;
  edid[20] = 0x80;                                                 // Digital input.
  edid[21] = static_cast<uint8_t>((millimetres(width) + 5) / 10);  // Size in cm.
  edid[22] = static_cast<uint8_t>((millimetres(height) + 5) / 10);
  edid[23] = 120;   // Gamma 2.2.
  edid[24] = 0x06;  // sRGB default colour space; the preferred timing is native.
  // sRGB's chromaticity: red, green, blue and white x/y, 10 bits each.
  const uint16_t xy[8] = {655, 338, 307, 614, 154, 61, 320, 337};
  edid[25] = static_cast<uint8_t>((xy[0] & 3) << 6 | (xy[1] & 3) << 4 | (xy[2] & 3) << 2 | (xy[3] & 3));
  edid[26] = static_cast<uint8_t>((xy[4] & 3) << 6 | (xy[5] & 3) << 4 | (xy[6] & 3) << 2 | (xy[7] & 3));
  for (int i = 0; i < 8; ++i) edid[27 + i] = static_cast<uint8_t>(xy[i] >> 2);
  edid[35] = 0x21;                                      // Established timings: 640x480@60, 800x600@60,
  edid[36] = 0x08;                                      // 1024x768@60.
  for (size_t at = 38; at < 54; ++at) edid[at] = 0x01;  // No standard timings.

  // The preferred mode.
  uint32_t clock = (width + H_BLANK) * (height + V_BLANK) * REFRESH_HZ / 10000;  // In 10 kHz.
  uint32_t widthMm = millimetres(width), heightMm = millimetres(height);
  uint8_t* timing = &edid[54];
  timing[0] = static_cast<uint8_t>(clock);
  timing[1] = static_cast<uint8_t>(clock >> 8);
  timing[2] = static_cast<uint8_t>(width);
  timing[3] = static_cast<uint8_t>(H_BLANK);
  timing[4] = static_cast<uint8_t>((width >> 8) << 4 | H_BLANK >> 8);
  timing[5] = static_cast<uint8_t>(height);
  timing[6] = static_cast<uint8_t>(V_BLANK);
  timing[7] = static_cast<uint8_t>((height >> 8) << 4 | V_BLANK >> 8);
  timing[8] = static_cast<uint8_t>(H_FRONT);
  timing[9] = static_cast<uint8_t>(H_SYNC);
  timing[10] = static_cast<uint8_t>(V_FRONT << 4 | V_SYNC);
  timing[11] = 0;  // The high bits of the four above: all small.
  timing[12] = static_cast<uint8_t>(widthMm);
  timing[13] = static_cast<uint8_t>(heightMm);
  timing[14] = static_cast<uint8_t>((widthMm >> 8) << 4 | heightMm >> 8);
  timing[17] = 0x1a;  // Digital separate sync, horizontal +, vertical -.

  // Range limits: 50-125 Hz, 30-160 kHz, up to 600 MHz (4K at 60 Hz fits).
  // (Range limits only: no GTF or CVT formula is offered.)
  putDescriptor(edid, 72, 0xfd, {50, 125, 30, 160, 60, 0x01, 0x0a, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20});
  putDescriptor(edid, 90, 0xfc, {'c', 'e', 'l', 'l', 'v', 'i', 's', 'o', 'r', '\n', 0x20, 0x20, 0x20});
  putDescriptor(edid, 108, 0x10, {});  // Unused.
  uint8_t sum = 0;
  for (size_t at = 0; at < 127; ++at) sum = static_cast<uint8_t>(sum + edid[at]);
  edid[127] = static_cast<uint8_t>(-sum);
  return edid;
}

}  // namespace cellvisor
