/*
 * sonoedge_wire.c - C99 reference implementation of wire protocol v1 (see sonoedge_wire.h and
 * ../PROTOCOL.md). No heap, no global mutable state, explicit little-endian serialisation.
 */
#include "sonoedge_wire.h"

#include <string.h>

/* The byte-wise float/double serialisation below needs IEEE 754 binary32 and binary64. */
typedef char se_requires_32bit_float_and_64bit_double[(sizeof(float) == 4 && sizeof(double) == 8)
                                                       ? 1
                                                       : -1];

/* ---- little-endian helpers ----------------------------------------------------------------- */

static void put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)((v >> 8) & 0xFFu);
    p[2] = (uint8_t)((v >> 16) & 0xFFu);
    p[3] = (uint8_t)(v >> 24);
}

static void put_u64(uint8_t *p, uint64_t v)
{
    put_u32(p, (uint32_t)(v & 0xFFFFFFFFu));
    put_u32(p + 4, (uint32_t)(v >> 32));
}

static void put_f32(uint8_t *p, float f)
{
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits); /* the bit pattern of one scalar, not a struct layout */
    put_u32(p, bits);
}

static void put_f64(uint8_t *p, double d)
{
    uint64_t bits;
    memcpy(&bits, &d, sizeof bits);
    put_u64(p, bits);
}

static uint16_t get_u16(const uint8_t *p)
{
    return (uint16_t)((unsigned)p[0] | ((unsigned)p[1] << 8)); /* no signed shift on 16-bit int */
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint64_t get_u64(const uint8_t *p)
{
    return (uint64_t)get_u32(p) | ((uint64_t)get_u32(p + 4) << 32);
}

static double get_f64(const uint8_t *p)
{
    uint64_t bits = get_u64(p);
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

/* ---- CRC-32: reflected polynomial 0xEDB88320, init and final XOR 0xFFFFFFFF ---------------- */

static const uint32_t crc_table[256] = {
    0x00000000ul, 0x77073096ul, 0xee0e612cul, 0x990951baul, 0x076dc419ul, 0x706af48ful,
    0xe963a535ul, 0x9e6495a3ul, 0x0edb8832ul, 0x79dcb8a4ul, 0xe0d5e91eul, 0x97d2d988ul,
    0x09b64c2bul, 0x7eb17cbdul, 0xe7b82d07ul, 0x90bf1d91ul, 0x1db71064ul, 0x6ab020f2ul,
    0xf3b97148ul, 0x84be41deul, 0x1adad47dul, 0x6ddde4ebul, 0xf4d4b551ul, 0x83d385c7ul,
    0x136c9856ul, 0x646ba8c0ul, 0xfd62f97aul, 0x8a65c9ecul, 0x14015c4ful, 0x63066cd9ul,
    0xfa0f3d63ul, 0x8d080df5ul, 0x3b6e20c8ul, 0x4c69105eul, 0xd56041e4ul, 0xa2677172ul,
    0x3c03e4d1ul, 0x4b04d447ul, 0xd20d85fdul, 0xa50ab56bul, 0x35b5a8faul, 0x42b2986cul,
    0xdbbbc9d6ul, 0xacbcf940ul, 0x32d86ce3ul, 0x45df5c75ul, 0xdcd60dcful, 0xabd13d59ul,
    0x26d930acul, 0x51de003aul, 0xc8d75180ul, 0xbfd06116ul, 0x21b4f4b5ul, 0x56b3c423ul,
    0xcfba9599ul, 0xb8bda50ful, 0x2802b89eul, 0x5f058808ul, 0xc60cd9b2ul, 0xb10be924ul,
    0x2f6f7c87ul, 0x58684c11ul, 0xc1611dabul, 0xb6662d3dul, 0x76dc4190ul, 0x01db7106ul,
    0x98d220bcul, 0xefd5102aul, 0x71b18589ul, 0x06b6b51ful, 0x9fbfe4a5ul, 0xe8b8d433ul,
    0x7807c9a2ul, 0x0f00f934ul, 0x9609a88eul, 0xe10e9818ul, 0x7f6a0dbbul, 0x086d3d2dul,
    0x91646c97ul, 0xe6635c01ul, 0x6b6b51f4ul, 0x1c6c6162ul, 0x856530d8ul, 0xf262004eul,
    0x6c0695edul, 0x1b01a57bul, 0x8208f4c1ul, 0xf50fc457ul, 0x65b0d9c6ul, 0x12b7e950ul,
    0x8bbeb8eaul, 0xfcb9887cul, 0x62dd1ddful, 0x15da2d49ul, 0x8cd37cf3ul, 0xfbd44c65ul,
    0x4db26158ul, 0x3ab551ceul, 0xa3bc0074ul, 0xd4bb30e2ul, 0x4adfa541ul, 0x3dd895d7ul,
    0xa4d1c46dul, 0xd3d6f4fbul, 0x4369e96aul, 0x346ed9fcul, 0xad678846ul, 0xda60b8d0ul,
    0x44042d73ul, 0x33031de5ul, 0xaa0a4c5ful, 0xdd0d7cc9ul, 0x5005713cul, 0x270241aaul,
    0xbe0b1010ul, 0xc90c2086ul, 0x5768b525ul, 0x206f85b3ul, 0xb966d409ul, 0xce61e49ful,
    0x5edef90eul, 0x29d9c998ul, 0xb0d09822ul, 0xc7d7a8b4ul, 0x59b33d17ul, 0x2eb40d81ul,
    0xb7bd5c3bul, 0xc0ba6cadul, 0xedb88320ul, 0x9abfb3b6ul, 0x03b6e20cul, 0x74b1d29aul,
    0xead54739ul, 0x9dd277aful, 0x04db2615ul, 0x73dc1683ul, 0xe3630b12ul, 0x94643b84ul,
    0x0d6d6a3eul, 0x7a6a5aa8ul, 0xe40ecf0bul, 0x9309ff9dul, 0x0a00ae27ul, 0x7d079eb1ul,
    0xf00f9344ul, 0x8708a3d2ul, 0x1e01f268ul, 0x6906c2feul, 0xf762575dul, 0x806567cbul,
    0x196c3671ul, 0x6e6b06e7ul, 0xfed41b76ul, 0x89d32be0ul, 0x10da7a5aul, 0x67dd4accul,
    0xf9b9df6ful, 0x8ebeeff9ul, 0x17b7be43ul, 0x60b08ed5ul, 0xd6d6a3e8ul, 0xa1d1937eul,
    0x38d8c2c4ul, 0x4fdff252ul, 0xd1bb67f1ul, 0xa6bc5767ul, 0x3fb506ddul, 0x48b2364bul,
    0xd80d2bdaul, 0xaf0a1b4cul, 0x36034af6ul, 0x41047a60ul, 0xdf60efc3ul, 0xa867df55ul,
    0x316e8eeful, 0x4669be79ul, 0xcb61b38cul, 0xbc66831aul, 0x256fd2a0ul, 0x5268e236ul,
    0xcc0c7795ul, 0xbb0b4703ul, 0x220216b9ul, 0x5505262ful, 0xc5ba3bbeul, 0xb2bd0b28ul,
    0x2bb45a92ul, 0x5cb36a04ul, 0xc2d7ffa7ul, 0xb5d0cf31ul, 0x2cd99e8bul, 0x5bdeae1dul,
    0x9b64c2b0ul, 0xec63f226ul, 0x756aa39cul, 0x026d930aul, 0x9c0906a9ul, 0xeb0e363ful,
    0x72076785ul, 0x05005713ul, 0x95bf4a82ul, 0xe2b87a14ul, 0x7bb12baeul, 0x0cb61b38ul,
    0x92d28e9bul, 0xe5d5be0dul, 0x7cdcefb7ul, 0x0bdbdf21ul, 0x86d3d2d4ul, 0xf1d4e242ul,
    0x68ddb3f8ul, 0x1fda836eul, 0x81be16cdul, 0xf6b9265bul, 0x6fb077e1ul, 0x18b74777ul,
    0x88085ae6ul, 0xff0f6a70ul, 0x66063bcaul, 0x11010b5cul, 0x8f659efful, 0xf862ae69ul,
    0x616bffd3ul, 0x166ccf45ul, 0xa00ae278ul, 0xd70dd2eeul, 0x4e048354ul, 0x3903b3c2ul,
    0xa7672661ul, 0xd06016f7ul, 0x4969474dul, 0x3e6e77dbul, 0xaed16a4aul, 0xd9d65adcul,
    0x40df0b66ul, 0x37d83bf0ul, 0xa9bcae53ul, 0xdebb9ec5ul, 0x47b2cf7ful, 0x30b5ffe9ul,
    0xbdbdf21cul, 0xcabac28aul, 0x53b39330ul, 0x24b4a3a6ul, 0xbad03605ul, 0xcdd70693ul,
    0x54de5729ul, 0x23d967bful, 0xb3667a2eul, 0xc4614ab8ul, 0x5d681b02ul, 0x2a6f2b94ul,
    0xb40bbe37ul, 0xc30c8ea1ul, 0x5a05df1bul, 0x2d02ef8dul,
};

uint32_t se_crc32_update(uint32_t crc, const void *data, size_t len)
{
    const uint8_t *p = (const uint8_t *)data;
    crc = ~crc;
    while (len--) {
        crc = crc_table[(crc ^ *p++) & 0xFFu] ^ (crc >> 8);
    }
    return ~crc;
}

uint32_t se_crc32(const void *data, size_t len)
{
    return se_crc32_update(0u, data, len);
}

/* ---- framing ------------------------------------------------------------------------------- */

long se_frame_header(uint8_t *out, size_t cap, uint8_t type, uint16_t flags, uint32_t sequence,
                     uint64_t timestamp_us, uint32_t payload_len)
{
    if (payload_len > SE_MAX_PAYLOAD) {
        return SE_ERR_ARG;
    }
    if (cap < SE_HEADER_SIZE) {
        return SE_ERR_BUFFER;
    }
    out[0] = SE_MAGIC0;
    out[1] = SE_MAGIC1;
    out[2] = SE_MAGIC2;
    out[3] = SE_MAGIC3;
    out[4] = SE_VERSION;
    out[5] = type;
    put_u16(out + 6, flags);
    put_u32(out + 8, sequence);
    put_u32(out + 12, payload_len);
    put_u64(out + 16, timestamp_us);
    put_u32(out + 24, 0u); /* reserved */
    put_u32(out + 28, se_crc32(out, 28));
    return (long)SE_HEADER_SIZE;
}

long se_frame_trailer(uint8_t *out, size_t cap, uint32_t payload_crc)
{
    if (cap < SE_TRAILER_SIZE) {
        return SE_ERR_BUFFER;
    }
    put_u32(out, payload_crc);
    return (long)SE_TRAILER_SIZE;
}

long se_frame_write(uint8_t *out, size_t cap, uint8_t type, uint16_t flags, uint32_t sequence,
                    uint64_t timestamp_us, const void *payload, uint32_t payload_len)
{
    if (payload_len > SE_MAX_PAYLOAD || (payload == NULL && payload_len > 0)) {
        return SE_ERR_ARG;
    }
    if (cap < SE_OVERHEAD || cap - SE_OVERHEAD < payload_len) {
        return SE_ERR_BUFFER;
    }
    /* Move the payload first: it may have been built in place (or overlap the header). */
    if (payload_len > 0 && (const uint8_t *)payload != out + SE_HEADER_SIZE) {
        memmove(out + SE_HEADER_SIZE, payload, payload_len);
    }
    (void)se_frame_header(out, cap, type, flags, sequence, timestamp_us, payload_len);
    put_u32(out + SE_HEADER_SIZE + payload_len, se_crc32(out + SE_HEADER_SIZE, payload_len));
    return (long)(SE_OVERHEAD + payload_len);
}

void se_encoder_init(se_encoder *enc, uint32_t first_sequence)
{
    enc->next_sequence = first_sequence;
}

long se_encoder_frame(se_encoder *enc, uint8_t *out, size_t cap, uint8_t type, uint16_t flags,
                      uint64_t timestamp_us, const void *payload, uint32_t payload_len)
{
    long n = se_frame_write(out, cap, type, flags, enc->next_sequence, timestamp_us, payload,
                            payload_len);
    if (n > 0) {
        enc->next_sequence = (uint32_t)(enc->next_sequence + 1u); /* wraps at 2^32 */
    }
    return n;
}

/* ---- payload builders ---------------------------------------------------------------------- */

/* Copy a NUL-terminated string into a NUL-padded field; SE_ERR_ARG if it does not fit. */
static int put_text(uint8_t *field, size_t size, const char *text)
{
    size_t n = text ? strlen(text) : 0;
    if (n > size) {
        return SE_ERR_ARG;
    }
    memset(field, 0, size);
    if (n > 0) {
        memcpy(field, text, n);
    }
    return SE_OK;
}

long se_pack_descriptor(uint8_t *out, size_t cap, const se_descriptor *d)
{
    size_t i;
    if (d->geometry > SE_PHASED || d->n_elements < 1u || d->n_elements > 65535u) {
        return SE_ERR_ARG;
    }
    if (cap < SE_DESCRIPTOR_SIZE) {
        return SE_ERR_BUFFER;
    }
    out[0] = d->geometry;
    out[1] = out[2] = out[3] = 0u;
    put_u32(out + 4, d->n_elements);
    put_f64(out + 8, d->center_frequency_hz);
    put_f64(out + 16, d->bandwidth_fraction);
    put_f64(out + 24, d->pitch_m);
    put_f64(out + 32, d->radius_m);
    put_f64(out + 40, d->sampling_frequency_hz);
    put_f64(out + 48, d->depth_min_m);
    put_f64(out + 56, d->depth_max_m);
    for (i = 0; i < 16; i++) {
        put_f64(out + 64 + 8 * i, d->imu_to_image[i]);
    }
    if (put_text(out + 192, 32, d->model) != SE_OK || put_text(out + 224, 32, d->serial) != SE_OK
        || put_text(out + 256, 16, d->firmware_version) != SE_OK) {
        return SE_ERR_ARG;
    }
    return (long)SE_DESCRIPTOR_SIZE;
}

static unsigned sample_size(uint8_t format)
{
    switch (format) {
    case SE_UINT8:
        return 1u;
    case SE_UINT16:
        return 2u;
    case SE_FLOAT32:
        return 4u;
    case SE_COMPLEX64:
        return 8u;
    default:
        return 0u;
    }
}

uint64_t se_image_sample_bytes(const se_image_header *h)
{
    return (uint64_t)h->n_frames * h->height * h->width * sample_size(h->sample_format);
}

long se_pack_image_header(uint8_t *out, size_t cap, const se_image_header *h)
{
    if (sample_size(h->sample_format) == 0u || h->grid > SE_POLAR || h->n_frames == 0u
        || h->height == 0u || h->width == 0u) {
        return SE_ERR_ARG;
    }
    if (cap < SE_IMAGE_HEADER_SIZE) {
        return SE_ERR_BUFFER;
    }
    put_u32(out, h->frame_index);
    put_u16(out + 4, h->n_frames);
    out[6] = h->sample_format;
    out[7] = h->grid;
    put_u16(out + 8, h->height);
    put_u16(out + 10, h->width);
    out[12] = out[13] = out[14] = out[15] = 0u;
    put_f64(out + 16, h->prf_hz);
    put_f64(out + 24, h->spacing_axial_m);
    put_f64(out + 32, h->spacing_lateral_m);
    put_f64(out + 40, h->origin_axial_m);
    put_f64(out + 48, h->origin_lateral_m);
    return (long)SE_IMAGE_HEADER_SIZE;
}

/* Type-specific rules of section 5.2 (format family, frame count, ensemble PRF). */
static int image_fits_type(uint8_t type, uint8_t format, uint16_t n_frames, double prf_hz)
{
    switch (type) {
    case SE_BMODE_FRAME:
        return format >= SE_UINT8 && format <= SE_FLOAT32 && n_frames == 1u;
    case SE_IQ_FRAME:
        return format == SE_COMPLEX64 && n_frames == 1u;
    case SE_IQ_ENSEMBLE:
        return format == SE_COMPLEX64 && n_frames >= 1u && prf_hz > 0.0; /* false for NaN */
    default:
        return 0;
    }
}

long se_pack_image(uint8_t *out, size_t cap, uint8_t type, const se_image_header *h,
                   const void *samples)
{
    uint64_t bytes = se_image_sample_bytes(h);
    uint64_t count = (uint64_t)h->n_frames * h->height * h->width;
    uint64_t i;
    uint8_t *p = out + SE_IMAGE_HEADER_SIZE;
    long head;
    if (samples == NULL || !image_fits_type(type, h->sample_format, h->n_frames, h->prf_hz)) {
        return SE_ERR_ARG;
    }
    if (SE_IMAGE_HEADER_SIZE + bytes > SE_MAX_PAYLOAD) {
        return SE_ERR_ARG;
    }
    if ((uint64_t)cap < SE_IMAGE_HEADER_SIZE + bytes) {
        return SE_ERR_BUFFER;
    }
    head = se_pack_image_header(out, cap, h);
    if (head < 0) {
        return head;
    }
    switch (h->sample_format) {
    case SE_UINT8:
        memcpy(p, samples, (size_t)count);
        break;
    case SE_UINT16:
        for (i = 0; i < count; i++) {
            put_u16(p + 2 * i, ((const uint16_t *)samples)[i]);
        }
        break;
    default: /* float32, or complex64 as interleaved float pairs */
        for (i = 0; i < count * (h->sample_format == SE_COMPLEX64 ? 2u : 1u); i++) {
            put_f32(p + 4 * i, ((const float *)samples)[i]);
        }
        break;
    }
    return (long)(SE_IMAGE_HEADER_SIZE + bytes);
}

long se_pack_imu(uint8_t *out, size_t cap, uint16_t n, const uint64_t *times_us,
                 const float *gyro_dps, const float *accel_g, const float *mag_ut)
{
    size_t i;
    size_t size = SE_IMU_HEADER_SIZE + (size_t)n * 8u + (size_t)n * 12u * (mag_ut ? 3u : 2u);
    uint8_t *p;
    if (n < 1u || n > SE_MAX_IMU_SAMPLES || !times_us || !gyro_dps || !accel_g) {
        return SE_ERR_ARG;
    }
    if (cap < size) {
        return SE_ERR_BUFFER;
    }
    put_u16(out, n);
    out[2] = mag_ut ? SE_IMU_HAS_MAG : 0u;
    memset(out + 3, 0, 5);
    p = out + SE_IMU_HEADER_SIZE;
    for (i = 0; i < n; i++, p += 8) {
        put_u64(p, times_us[i]);
    }
    for (i = 0; i < 3u * n; i++, p += 4) {
        put_f32(p, gyro_dps[i]);
    }
    for (i = 0; i < 3u * n; i++, p += 4) {
        put_f32(p, accel_g[i]);
    }
    for (i = 0; mag_ut && i < 3u * n; i++, p += 4) {
        put_f32(p, mag_ut[i]);
    }
    return (long)size;
}

long se_pack_status(uint8_t *out, size_t cap, const se_probe_status *s)
{
    if (s->state > SE_STATE_ERROR || s->mode > SE_MODE_DOPPLER) {
        return SE_ERR_ARG;
    }
    if (cap < SE_STATUS_SIZE) {
        return SE_ERR_BUFFER;
    }
    out[0] = s->state;
    out[1] = s->mode;
    out[2] = out[3] = 0u;
    put_f32(out + 4, s->temperature_c);
    put_f64(out + 8, s->depth_m);
    put_f64(out + 16, s->prf_hz);
    put_f64(out + 24, s->gain_db);
    put_u32(out + 32, s->frames_sent);
    put_u32(out + 36, s->frames_dropped);
    return (long)SE_STATUS_SIZE;
}

long se_pack_error(uint8_t *out, size_t cap, uint32_t code, const char *text, size_t text_len)
{
    if (text_len > SE_MAX_ERROR_TEXT || (text == NULL && text_len > 0)) {
        return SE_ERR_ARG;
    }
    if (cap < SE_ERROR_HEADER_SIZE + text_len) {
        return SE_ERR_BUFFER;
    }
    put_u32(out, code);
    put_u32(out + 4, 0u);
    if (text_len > 0) {
        memcpy(out + SE_ERROR_HEADER_SIZE, text, text_len);
    }
    return (long)(SE_ERROR_HEADER_SIZE + text_len);
}

long se_pack_command(uint8_t *out, size_t cap, const se_command *c)
{
    if (c->code < SE_CMD_START || c->code > SE_CMD_REQUEST_DESCRIPTOR) {
        return SE_ERR_ARG;
    }
    if (cap < SE_COMMAND_SIZE) {
        return SE_ERR_BUFFER;
    }
    out[0] = c->code;
    out[1] = out[2] = out[3] = 0u;
    put_u32(out + 4, c->arg);
    put_f64(out + 8, c->value);
    return (long)SE_COMMAND_SIZE;
}

long se_pack_ack(uint8_t *out, size_t cap, const se_ack *a)
{
    if (a->code < SE_CMD_START || a->code > SE_CMD_REQUEST_DESCRIPTOR
        || a->result > SE_ACK_BAD_COMMAND) {
        return SE_ERR_ARG;
    }
    if (cap < SE_ACK_SIZE) {
        return SE_ERR_BUFFER;
    }
    put_u32(out, a->sequence);
    out[4] = a->code;
    out[5] = a->result;
    out[6] = out[7] = 0u;
    put_f64(out + 8, a->applied_value);
    return (long)SE_ACK_SIZE;
}

/* ---- payload checks and parsers ------------------------------------------------------------ */

static int is_command_code(uint8_t code)
{
    return code >= SE_CMD_START && code <= SE_CMD_REQUEST_DESCRIPTOR;
}

static int check_descriptor(const uint8_t *p, uint32_t len)
{
    uint32_t n_elements;
    double bandwidth, radius;
    if (len != SE_DESCRIPTOR_SIZE || p[0] > SE_PHASED) {
        return 0;
    }
    n_elements = get_u32(p + 4);
    bandwidth = get_f64(p + 16);
    radius = get_f64(p + 32);
    /* Comparisons are written so that NaN fails them. */
    return n_elements >= 1u && n_elements <= 65535u && bandwidth > 0.0 && bandwidth <= 2.0
           && (p[0] == SE_CONVEX ? radius > 0.0 : radius == 0.0);
}

static int check_image(uint8_t type, const uint8_t *p, uint32_t len)
{
    se_image_header h;
    if (len < SE_IMAGE_HEADER_SIZE) {
        return 0;
    }
    h.n_frames = get_u16(p + 4);
    h.sample_format = p[6];
    h.height = get_u16(p + 8);
    h.width = get_u16(p + 10);
    if (sample_size(h.sample_format) == 0u || p[7] > SE_POLAR || h.height == 0u || h.width == 0u
        || !image_fits_type(type, h.sample_format, h.n_frames, get_f64(p + 16))) {
        return 0;
    }
    return (uint64_t)len == SE_IMAGE_HEADER_SIZE + se_image_sample_bytes(&h);
}

static int check_imu(const uint8_t *p, uint32_t len)
{
    uint32_t n;
    if (len < SE_IMU_HEADER_SIZE) {
        return 0;
    }
    n = get_u16(p);
    return n >= 1u && n <= SE_MAX_IMU_SAMPLES
           && len == SE_IMU_HEADER_SIZE + n * 8u + n * 12u * ((p[2] & SE_IMU_HAS_MAG) ? 3u : 2u);
}

int se_check_payload(uint8_t type, const uint8_t *payload, uint32_t len)
{
    int ok;
    switch (type) {
    case SE_PROBE_DESCRIPTOR:
        ok = check_descriptor(payload, len);
        break;
    case SE_STATUS:
        ok = len == SE_STATUS_SIZE && payload[0] <= SE_STATE_ERROR && payload[1] <= SE_MODE_DOPPLER;
        break;
    case SE_ERROR:
        ok = len >= SE_ERROR_HEADER_SIZE && len - SE_ERROR_HEADER_SIZE <= SE_MAX_ERROR_TEXT;
        break;
    case SE_BMODE_FRAME:
    case SE_IQ_FRAME:
    case SE_IQ_ENSEMBLE:
        ok = check_image(type, payload, len);
        break;
    case SE_IMU_BATCH:
        ok = check_imu(payload, len);
        break;
    case SE_COMMAND:
        ok = len == SE_COMMAND_SIZE && is_command_code(payload[0]);
        break;
    case SE_ACK:
        ok = len == SE_ACK_SIZE && is_command_code(payload[4]) && payload[5] <= SE_ACK_BAD_COMMAND;
        break;
    default:
        return SE_ERR_ARG;
    }
    return ok ? SE_OK : SE_ERR_PAYLOAD;
}

int se_parse_command(const uint8_t *payload, uint32_t len, se_command *out)
{
    if (se_check_payload(SE_COMMAND, payload, len) != SE_OK) {
        return SE_ERR_PAYLOAD;
    }
    out->code = payload[0];
    out->arg = get_u32(payload + 4);
    out->value = get_f64(payload + 8);
    return SE_OK;
}

int se_parse_ack(const uint8_t *payload, uint32_t len, se_ack *out)
{
    if (se_check_payload(SE_ACK, payload, len) != SE_OK) {
        return SE_ERR_PAYLOAD;
    }
    out->sequence = get_u32(payload);
    out->code = payload[4];
    out->result = payload[5];
    out->applied_value = get_f64(payload + 8);
    return SE_OK;
}

/* ---- streaming decoder --------------------------------------------------------------------- */

int se_decoder_init(se_decoder *dec, uint8_t *buffer, size_t capacity, uint32_t max_payload)
{
    if (buffer == NULL || max_payload == 0u || max_payload > SE_MAX_PAYLOAD
        || capacity < SE_OVERHEAD || capacity - SE_OVERHEAD < max_payload) {
        return SE_ERR_ARG;
    }
    memset(dec, 0, sizeof *dec);
    dec->buf = buffer;
    dec->capacity = capacity;
    dec->max_payload = max_payload;
    return SE_OK;
}

uint32_t se_decoder_limit(const se_decoder *dec, uint8_t type)
{
    uint32_t bound;
    switch (type) {
    case SE_PROBE_DESCRIPTOR:
    case SE_ERROR:
        bound = 4096u;
        break;
    case SE_STATUS:
        bound = 1024u;
        break;
    case SE_IMU_BATCH:
        bound = 1048576u;
        break;
    case SE_COMMAND:
    case SE_ACK:
        bound = 256u;
        break;
    default: /* images, ensembles and unknown types */
        return dec->max_payload;
    }
    return bound < dec->max_payload ? bound : dec->max_payload;
}

static int is_known_type(uint8_t type)
{
    switch (type) {
    case SE_PROBE_DESCRIPTOR:
    case SE_STATUS:
    case SE_ERROR:
    case SE_BMODE_FRAME:
    case SE_IQ_FRAME:
    case SE_IQ_ENSEMBLE:
    case SE_IMU_BATCH:
    case SE_COMMAND:
    case SE_ACK:
        return 1;
    default:
        return 0;
    }
}

static int is_magic(const uint8_t *p)
{
    return p[0] == SE_MAGIC0 && p[1] == SE_MAGIC1 && p[2] == SE_MAGIC2 && p[3] == SE_MAGIC3;
}

/* Index of the first complete magic in buf[from, end), or end if there is none. */
static size_t find_magic(const uint8_t *buf, size_t from, size_t end)
{
    while (end - from >= 4u) {
        const uint8_t *hit = (const uint8_t *)memchr(buf + from, SE_MAGIC0, end - from - 3u);
        if (hit == NULL) {
            break;
        }
        from = (size_t)(hit - buf);
        if (is_magic(hit)) {
            return from;
        }
        from++;
    }
    return end;
}

/* Rule 7: count the sequence numbers skipped since the previous message with valid CRCs. A
 * jump backwards (apparent gap >= 2^31: a restart or a duplicate) is not counted as loss. */
static void track_sequence(se_decoder *dec, uint32_t sequence)
{
    if (dec->have_sequence) {
        uint32_t gap = (uint32_t)(sequence - dec->last_sequence - 1u);
        if (gap != 0u && gap < 0x80000000u) {
            dec->stats.seq_lost += gap;
        }
    }
    dec->last_sequence = sequence;
    dec->have_sequence = 1;
}

/* Decode what the buffer holds (the receiver rules of PROTOCOL.md section 6), then move the
 * unconsumed tail to the start of the buffer. With final set, nothing is kept. */
static size_t scan(se_decoder *dec, int final, se_message_fn fn, void *user)
{
    uint8_t *buf = dec->buf;
    size_t pos = 0, end = dec->len, total, handed = 0;
    se_stats *st = &dec->stats;
    for (;;) {
        const uint8_t *m;
        uint32_t length;
        if (dec->pending) {
            total = dec->pending;
            if (end - pos < total) {
                if (!final) {
                    break;
                }
                st->truncated++;
                dec->pending = 0;
                pos++; /* rule 6: search the bytes it covered again */
                continue;
            }
        } else {
            if (end - pos < SE_HEADER_SIZE) {
                if (final) {
                    st->garbage_bytes += (uint32_t)(end - pos);
                    pos = end;
                }
                break;
            }
            if (!is_magic(buf + pos)) { /* rule 1 */
                size_t found = find_magic(buf, pos + 1, end);
                if (found == end) {
                    /* Keep a tail that may be the start of the next magic. */
                    size_t keep = end - pos > 3u ? end - 3u : pos;
                    st->garbage_bytes += (uint32_t)(keep - pos);
                    pos = keep;
                    if (!final) {
                        break;
                    }
                    continue;
                }
                st->garbage_bytes += (uint32_t)(found - pos);
                pos = found;
                continue;
            }
            m = buf + pos; /* rule 2 */
            if (se_crc32(m, 28) != get_u32(m + 28)) {
                st->bad_header_crc++;
                pos++;
                continue;
            }
            if (m[4] != SE_VERSION) {
                st->bad_version++;
                pos++;
                continue;
            }
            length = get_u32(m + 12);
            if (length > se_decoder_limit(dec, m[5])) {
                st->too_long++;
                pos++;
                continue;
            }
            total = SE_OVERHEAD + (size_t)length;
            if (end - pos < total) {
                dec->pending = total; /* wait for the rest (rule 3) */
                continue;
            }
        }
        dec->pending = 0;
        m = buf + pos;
        length = (uint32_t)(total - SE_OVERHEAD);
        if (se_crc32(m + SE_HEADER_SIZE, length) != get_u32(m + SE_HEADER_SIZE + length)) {
            st->bad_payload_crc++; /* rule 3: real messages may lie inside, advance one byte */
            pos++;
            continue;
        }
        pos += total;
        track_sequence(dec, get_u32(m + 8));
        if (!is_known_type(m[5])) { /* rule 4 */
            st->unknown_type++;
            continue;
        }
        if (se_check_payload(m[5], m + SE_HEADER_SIZE, length) != SE_OK) { /* rule 5 */
            st->bad_payload++;
            continue;
        }
        st->accepted++;
        handed++;
        if (fn) {
            se_message msg;
            msg.type = m[5];
            msg.flags = get_u16(m + 6);
            msg.sequence = get_u32(m + 8);
            msg.timestamp_us = get_u64(m + 16);
            msg.payload = m + SE_HEADER_SIZE;
            msg.payload_len = length;
            fn(&msg, user);
        }
    }
    if (pos > 0) {
        memmove(buf, buf + pos, end - pos);
        dec->len = end - pos;
    }
    return handed;
}

size_t se_decoder_feed(se_decoder *dec, const void *data, size_t len, se_message_fn fn,
                       void *user)
{
    const uint8_t *p = (const uint8_t *)data;
    size_t handed = 0;
    while (len > 0) {
        /* scan() always leaves room: what it keeps is shorter than one bounded message. */
        size_t n = dec->capacity - dec->len;
        if (n > len) {
            n = len;
        }
        memcpy(dec->buf + dec->len, p, n);
        dec->len += n;
        p += n;
        len -= n;
        handed += scan(dec, 0, fn, user);
    }
    return handed;
}

size_t se_decoder_flush(se_decoder *dec, se_message_fn fn, void *user)
{
    size_t handed = scan(dec, 1, fn, user);
    dec->len = 0;
    dec->pending = 0;
    return handed;
}
