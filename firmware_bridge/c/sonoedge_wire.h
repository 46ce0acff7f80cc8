/*
 * sonoedge_wire.h - C99 reference implementation of the sonoedge probe link, wire protocol v1.
 *
 * The specification is firmware_bridge/PROTOCOL.md; this file and sonoedge_wire.c implement it
 * for firmware authors. No heap, no dependency beyond the C standard library, no global state.
 * Every multi-byte field is written and read byte by byte in little-endian order, so the code
 * runs unchanged on big-endian MCUs. Requirements: 8-bit bytes, IEEE 754 `float` (32-bit) and
 * `double` (64-bit) - a compile-time check rejects platforms where double is 32-bit.
 *
 * Sending (probe side): build a payload with an se_pack_*() function, then frame it:
 *
 *     uint8_t tx[SE_OVERHEAD + SE_STATUS_SIZE];
 *     se_encoder enc;  se_encoder_init(&enc, 0);
 *     long n = se_pack_status(tx + SE_HEADER_SIZE, sizeof tx - SE_HEADER_SIZE, &status);
 *     if (n >= 0) n = se_encoder_frame(&enc, tx, sizeof tx, SE_STATUS, 0, now_us,
 *                                      tx + SE_HEADER_SIZE, (uint32_t)n);
 *     if (n > 0) uart_write(tx, (size_t)n);
 *
 * (building the payload in place at tx + SE_HEADER_SIZE avoids a copy; any other payload
 * buffer works too). Large images can be sent in pieces without a frame-sized buffer:
 * se_frame_header(), the payload bytes (e.g. by DMA) with se_crc32_update() over them, then
 * se_frame_trailer().
 *
 * Receiving (e.g. COMMAND messages on the probe): give a decoder a buffer of at least
 * SE_OVERHEAD + max_payload bytes and feed it whatever bytes arrive:
 *
 *     static uint8_t rx[SE_OVERHEAD + 256];
 *     se_decoder dec;  se_decoder_init(&dec, rx, sizeof rx, 256);
 *     se_decoder_feed(&dec, bytes, len, on_message, ctx);   // calls on_message per message
 *
 * Functions that write return the number of bytes written (>= 0) or a negative se_status code.
 */
#ifndef SONOEDGE_WIRE_H
#define SONOEDGE_WIRE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- framing constants (PROTOCOL.md section 2) ------------------------------------------- */

#define SE_VERSION 1u
#define SE_MAGIC0 0xA5u
#define SE_MAGIC1 0x5Au
#define SE_MAGIC2 0x53u /* 'S' */
#define SE_MAGIC3 0x45u /* 'E' */
#define SE_HEADER_SIZE 32u                  /* magic .. header_crc */
#define SE_TRAILER_SIZE 4u                  /* payload_crc */
#define SE_OVERHEAD 36u                     /* header + trailer */
#define SE_MAX_PAYLOAD 0x10000000ul         /* 256 MiB: the protocol's limit */
#define SE_DEFAULT_MAX_PAYLOAD 0x4000000ul  /* 64 MiB: host default for images/ensembles */

#define SE_FLAG_CLOCK_RESET 0x0001u /* the sender's microsecond counter restarted (section 4) */

/* Message types (section 3). */
enum se_type {
    SE_PROBE_DESCRIPTOR = 0x01,
    SE_STATUS = 0x02,
    SE_ERROR = 0x03,
    SE_BMODE_FRAME = 0x10,
    SE_IQ_FRAME = 0x11,
    SE_IQ_ENSEMBLE = 0x12,
    SE_IMU_BATCH = 0x20,
    SE_COMMAND = 0x40,
    SE_ACK = 0x41
};

/* Return codes (negative) of the functions below. */
enum se_status {
    SE_OK = 0,
    SE_ERR_BUFFER = -1, /* the output buffer is too small */
    SE_ERR_ARG = -2,    /* an argument is outside what the protocol allows */
    SE_ERR_PAYLOAD = -3 /* a received payload does not match its layout (section 5) */
};

/* Fixed payload sizes (section 5). */
#define SE_DESCRIPTOR_SIZE 272u
#define SE_IMAGE_HEADER_SIZE 56u
#define SE_IMU_HEADER_SIZE 8u
#define SE_STATUS_SIZE 40u
#define SE_ERROR_HEADER_SIZE 8u
#define SE_COMMAND_SIZE 16u
#define SE_ACK_SIZE 16u
#define SE_MAX_IMU_SAMPLES 4096u
#define SE_MAX_ERROR_TEXT 1024u
#define SE_IMU_HAS_MAG 0x01u

/* Enumerations carried in payloads. */
enum se_geometry { SE_LINEAR = 0, SE_CONVEX = 1, SE_PHASED = 2 };
enum se_sample_format { SE_UINT8 = 1, SE_UINT16 = 2, SE_FLOAT32 = 3, SE_COMPLEX64 = 4 };
enum se_grid { SE_CARTESIAN = 0, SE_POLAR = 1 };
enum se_mode { SE_MODE_BMODE = 0, SE_MODE_IQ = 1, SE_MODE_DOPPLER = 2 };
enum se_state { SE_STATE_IDLE = 0, SE_STATE_STREAMING = 1, SE_STATE_ERROR = 2 };
enum se_command_code {
    SE_CMD_START = 1,
    SE_CMD_STOP = 2,
    SE_CMD_SET_MODE = 3,
    SE_CMD_SET_DEPTH = 4,
    SE_CMD_SET_PRF = 5,
    SE_CMD_SET_GAIN = 6,
    SE_CMD_REQUEST_DESCRIPTOR = 7
};
enum se_ack_result {
    SE_ACK_OK = 0,
    SE_ACK_UNSUPPORTED = 1,
    SE_ACK_OUT_OF_RANGE = 2,
    SE_ACK_BUSY = 3,
    SE_ACK_BAD_COMMAND = 4
};

/* ---- CRC-32 (IEEE 802.3 / zlib) ----------------------------------------------------------- */

/* CRC-32 of len bytes. se_crc32("123456789", 9) == 0xCBF43926. */
uint32_t se_crc32(const void *data, size_t len);
/* Continue a CRC over more bytes: start with crc = 0, pass each piece in order (as zlib). */
uint32_t se_crc32_update(uint32_t crc, const void *data, size_t len);

/* ---- framing (section 2) ------------------------------------------------------------------ */

/* Write the 32-byte header of a message whose payload is payload_len bytes. Returns 32, or
 * SE_ERR_BUFFER (cap < 32) or SE_ERR_ARG (payload_len > SE_MAX_PAYLOAD). */
long se_frame_header(uint8_t *out, size_t cap, uint8_t type, uint16_t flags, uint32_t sequence,
                     uint64_t timestamp_us, uint32_t payload_len);
/* Write the 4-byte trailer (payload CRC as returned by se_crc32/se_crc32_update). Returns 4. */
long se_frame_trailer(uint8_t *out, size_t cap, uint32_t payload_crc);
/* Write a whole message (header, payload, trailer): returns SE_OVERHEAD + payload_len bytes.
 * payload may point at out + SE_HEADER_SIZE (payload built in place); other overlaps are not
 * allowed. payload may be NULL when payload_len is 0. */
long se_frame_write(uint8_t *out, size_t cap, uint8_t type, uint16_t flags, uint32_t sequence,
                    uint64_t timestamp_us, const void *payload, uint32_t payload_len);

/* A sender's running sequence number: +1 per message written, wrapping at 2^32. */
typedef struct {
    uint32_t next_sequence;
} se_encoder;
void se_encoder_init(se_encoder *enc, uint32_t first_sequence);
/* se_frame_write() with the next sequence number; the number advances only on success. */
long se_encoder_frame(se_encoder *enc, uint8_t *out, size_t cap, uint8_t type, uint16_t flags,
                      uint64_t timestamp_us, const void *payload, uint32_t payload_len);

/* ---- payload builders (section 5): each returns the payload size or a negative code ------ */

typedef struct {
    uint8_t geometry;     /* enum se_geometry */
    uint32_t n_elements;  /* 1..65535 */
    double center_frequency_hz;
    double bandwidth_fraction; /* -6 dB fractional bandwidth, 0 < b <= 2 */
    double pitch_m;
    double radius_m; /* convex: > 0, others: 0 */
    double sampling_frequency_hz;
    double depth_min_m;
    double depth_max_m;
    double imu_to_image[16]; /* 4x4, row-major, metres */
    const char *model;            /* NUL-terminated UTF-8, at most 32 bytes (NULL = empty) */
    const char *serial;           /* at most 32 bytes */
    const char *firmware_version; /* at most 16 bytes */
} se_descriptor;
long se_pack_descriptor(uint8_t *out, size_t cap, const se_descriptor *d);

typedef struct {
    uint32_t frame_index;
    uint16_t n_frames;     /* 1, or N >= 1 for SE_IQ_ENSEMBLE */
    uint8_t sample_format; /* enum se_sample_format: 1-3 for B-mode, 4 for IQ */
    uint8_t grid;          /* enum se_grid */
    uint16_t height;       /* samples along depth */
    uint16_t width;        /* lines across the aperture */
    double prf_hz;         /* ensembles: > 0; single frames: 0 */
    double spacing_axial_m;
    double spacing_lateral_m; /* radians on a polar grid */
    double origin_axial_m;
    double origin_lateral_m;
} se_image_header;
/* Bytes of sample data the header describes (n_frames * height * width * sample size). */
uint64_t se_image_sample_bytes(const se_image_header *h);
/* The 56-byte image header only; the caller sends the samples (little-endian) after it. */
long se_pack_image_header(uint8_t *out, size_t cap, const se_image_header *h);
/* Header plus samples, converted to little-endian: samples points at n_frames*height*width
 * uint8_t, uint16_t or float values, or at interleaved I,Q float pairs for SE_COMPLEX64, in C
 * order [frame][axial][lateral]. type (BMODE_FRAME, IQ_FRAME or IQ_ENSEMBLE) is checked
 * against the header (format, n_frames, prf). */
long se_pack_image(uint8_t *out, size_t cap, uint8_t type, const se_image_header *h,
                   const void *samples);

/* IMU batch of n samples (1..4096): times_us[n], gyro_dps[n*3], accel_g[n*3] and, if not
 * NULL, mag_ut[n*3] (sample-major x, y, z). */
long se_pack_imu(uint8_t *out, size_t cap, uint16_t n, const uint64_t *times_us,
                 const float *gyro_dps, const float *accel_g, const float *mag_ut);

typedef struct {
    uint8_t state; /* enum se_state */
    uint8_t mode;  /* enum se_mode */
    float temperature_c;
    double depth_m;
    double prf_hz;
    double gain_db;
    uint32_t frames_sent;
    uint32_t frames_dropped;
} se_probe_status;
long se_pack_status(uint8_t *out, size_t cap, const se_probe_status *s);

/* Error: code, then text_len (<= 1024) bytes of UTF-8 text, no terminator. */
long se_pack_error(uint8_t *out, size_t cap, uint32_t code, const char *text, size_t text_len);

typedef struct {
    uint8_t code;  /* enum se_command_code */
    uint32_t arg;  /* the mode for SET_MODE, else 0 */
    double value;  /* depth m / PRF Hz / gain dB, else 0 */
} se_command;
long se_pack_command(uint8_t *out, size_t cap, const se_command *c);

typedef struct {
    uint32_t sequence; /* of the COMMAND message answered */
    uint8_t code;      /* its command code */
    uint8_t result;    /* enum se_ack_result */
    double applied_value;
} se_ack;
long se_pack_ack(uint8_t *out, size_t cap, const se_ack *a);

/* ---- payload checks and parsers ------------------------------------------------------------ */

/* SE_OK when a payload of a known type matches its layout (section 5: sizes, enumerations,
 * image and IMU lengths, ensemble PRF > 0), else SE_ERR_PAYLOAD (SE_ERR_ARG: unknown type). */
int se_check_payload(uint8_t type, const uint8_t *payload, uint32_t len);
int se_parse_command(const uint8_t *payload, uint32_t len, se_command *out);
int se_parse_ack(const uint8_t *payload, uint32_t len, se_ack *out);

/* ---- streaming decoder (section 6) --------------------------------------------------------- */

/* A verified message. payload points into the decoder's buffer and is valid only during the
 * callback; copy what you keep. */
typedef struct {
    uint8_t type;
    uint16_t flags;
    uint32_t sequence;
    uint64_t timestamp_us;
    const uint8_t *payload;
    uint32_t payload_len;
} se_message;
typedef void (*se_message_fn)(const se_message *msg, void *user);

/* Counters (they wrap at 2^32). The first seven match the Python decoder's stats. */
typedef struct {
    uint32_t garbage_bytes;   /* bytes skipped while searching for the magic */
    uint32_t bad_header_crc;
    uint32_t bad_version;
    uint32_t too_long;        /* payload_length above the bound for its type */
    uint32_t bad_payload_crc;
    uint32_t unknown_type;    /* both CRCs valid, type not in section 3: skipped */
    uint32_t truncated;       /* incomplete message at the end of the stream */
    uint32_t bad_payload;     /* valid CRCs, payload layout wrong (se_check_payload) */
    uint32_t seq_lost;        /* messages missing from sequence-number gaps (rule 7) */
    uint32_t accepted;        /* messages handed to the callback */
} se_stats;

typedef struct {
    uint8_t *buf;
    size_t capacity;
    size_t len;          /* bytes held in buf */
    size_t pending;      /* size of a verified-header message at buf[0] still incomplete */
    uint32_t max_payload;
    uint32_t last_sequence;
    int have_sequence;
    se_stats stats;
} se_decoder;

/* Payload bound per type: min(per-type bound of section 2, max_payload); unknown types and
 * images use max_payload. buffer must hold SE_OVERHEAD + max_payload bytes. Returns SE_OK,
 * or SE_ERR_ARG (max_payload 0 or above SE_MAX_PAYLOAD, or buffer too small). */
int se_decoder_init(se_decoder *dec, uint8_t *buffer, size_t capacity, uint32_t max_payload);
uint32_t se_decoder_limit(const se_decoder *dec, uint8_t type);
/* Feed received bytes (any chunking). Calls fn (may be NULL) for each message that passed
 * both CRCs, has a known type and a valid payload layout, in stream order; returns how many.
 * fn must not feed the same decoder. */
size_t se_decoder_feed(se_decoder *dec, const void *data, size_t len, se_message_fn fn,
                       void *user);
/* End of stream: an incomplete message counts as truncated and the bytes it covered are
 * searched again; leftover bytes count as garbage. The decoder is empty afterwards and can be
 * fed a new stream (sequence tracking continues). Returns the messages handed on. */
size_t se_decoder_flush(se_decoder *dec, se_message_fn fn, void *user);

#ifdef __cplusplus
}
#endif

#endif /* SONOEDGE_WIRE_H */
