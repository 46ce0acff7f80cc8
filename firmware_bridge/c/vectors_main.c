/*
 * vectors_main.c - test-vector driver for the C reference (used by tests/test_c_reference.py).
 *
 *   vectors encode                     write the canonical messages (v1_canonical.bin) to stdout
 *   vectors decode [CHUNK [MAX]]       decode stdin, fed CHUNK bytes at a time (default 4096),
 *                                      with payload bound MAX (default 64 MiB); print one line
 *                                      per accepted message, then the counters
 *   vectors crc32 TEXT                 print the CRC-32 of TEXT's bytes in hex
 *   vectors selftest                   API edge cases (buffer sizes, in-place framing, ...)
 *
 * Decode output: "TYPE SEQUENCE TIMESTAMP_US PAYLOAD_LEN PAYLOAD_CRC32 FLAGS" per message
 * (decimal, CRC in 8 hex digits), then "stat NAME VALUE" per counter.
 *
 * The canonical messages mirror canonical_messages() in ../testvectors.py literal by literal.
 */
#include "sonoedge_wire.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIRST_SEQUENCE 0xFFFFFFFAu
#define T0_US ((uint64_t)1 << 40)
#define COMMAND_SEQUENCE 41u

static uint8_t tx[8192];
static uint8_t rx[SE_OVERHEAD + SE_DEFAULT_MAX_PAYLOAD];

/* ---- encode ---------------------------------------------------------------------------------- */

static se_encoder probe;

static void die(const char *what, long code)
{
    fprintf(stderr, "vectors: %s failed (%ld)\n", what, code);
    exit(2);
}

/* Frame the payload built at tx + SE_HEADER_SIZE and write the message to stdout. */
static void send_payload(long payload_len, uint8_t type, uint16_t flags, uint64_t t_us)
{
    long n;
    if (payload_len < 0) {
        die("payload builder", payload_len);
    }
    n = se_encoder_frame(&probe, tx, sizeof tx, type, flags, t_us, tx + SE_HEADER_SIZE,
                         (uint32_t)payload_len);
    if (n < 0) {
        die("se_encoder_frame", n);
    }
    fwrite(tx, 1, (size_t)n, stdout);
}

static void send_host_command(const se_command *c, uint32_t sequence, uint64_t t_us)
{
    uint8_t payload[SE_COMMAND_SIZE];
    long n = se_pack_command(payload, sizeof payload, c);
    if (n < 0) {
        die("se_pack_command", n);
    }
    n = se_frame_write(tx, sizeof tx, SE_COMMAND, 0, sequence, t_us, payload, (uint32_t)n);
    if (n < 0) {
        die("se_frame_write", n);
    }
    fwrite(tx, 1, (size_t)n, stdout);
}

static long image(uint8_t type, se_image_header *h, uint32_t index, uint16_t n, uint8_t format,
                  uint8_t grid, uint16_t height, uint16_t width, double prf,
                  const double spacing[2], const double origin[2], const void *samples)
{
    h->frame_index = index;
    h->n_frames = n;
    h->sample_format = format;
    h->grid = grid;
    h->height = height;
    h->width = width;
    h->prf_hz = prf;
    h->spacing_axial_m = spacing[0];
    h->spacing_lateral_m = spacing[1];
    h->origin_axial_m = origin[0];
    h->origin_lateral_m = origin[1];
    return se_pack_image(tx + SE_HEADER_SIZE, sizeof tx - SE_HEADER_SIZE, type, h, samples);
}

static void send_imu(uint16_t n, int with_mag, uint64_t t_us)
{
    uint64_t times[4];
    float gyro[12], accel[12], mag[12];
    int i, j;
    for (i = 0; i < n; i++) {
        times[i] = t_us + (uint64_t)i * 1250u;
        for (j = 0; j < 3; j++) {
            int m = i * 3 + j;
            gyro[m] = (float)((m - 4) * 0.25);
            accel[m] = (float)((m % 5 - 2) * 0.125 + (j == 2 ? 1.0 : 0.0));
            mag[m] = (float)((m - 3) * 2.5 + 20.0);
        }
    }
    send_payload(se_pack_imu(tx + SE_HEADER_SIZE, sizeof tx - SE_HEADER_SIZE, n, times, gyro,
                             accel, with_mag ? mag : NULL),
                 SE_IMU_BATCH, 0, t_us);
}

static void encode_canonical(void)
{
    static const char fault_text[] = "temp 41.5 \xc2\xb0"
                                     "C \xe2\x80\x94 \xc3\xbc"
                                     "berhitzt, throttling";
    const double r = 0.7071067811865476;
    se_descriptor d;
    se_probe_status s;
    se_image_header h;
    se_command c;
    se_ack a;
    uint8_t u8[30];
    uint16_t u16[12];
    float f32[6], iq[24], ens[36];
    int k;

    se_encoder_init(&probe, FIRST_SEQUENCE);

    d.geometry = SE_CONVEX;
    d.n_elements = 192;
    d.center_frequency_hz = 3.5e6;
    d.bandwidth_fraction = 0.72;
    d.pitch_m = 2.45e-4;
    d.radius_m = 0.045;
    d.sampling_frequency_hz = 14e6;
    d.depth_min_m = 0.002;
    d.depth_max_m = 0.16;
    {
        const double m[16] = {0.0, -1.0, 0.0, 0.012, r,   0.0, r,   -0.0035,
                              -r,  0.0,  r,   0.021, 0.0, 0.0, 0.0, 1.0};
        memcpy(d.imu_to_image, m, sizeof m);
    }
    d.model = "SonoEdge C5-2 convex";
    d.serial = "SN-0123456789ABCDEF-0123456789AB"; /* exactly 32 bytes: no terminator */
    d.firmware_version = "fw 1.4.0 \xce\xb2";
    send_payload(se_pack_descriptor(tx + SE_HEADER_SIZE, sizeof tx - SE_HEADER_SIZE, &d),
                 SE_PROBE_DESCRIPTOR, 0, T0_US);

    s.state = SE_STATE_STREAMING;
    s.mode = SE_MODE_DOPPLER;
    s.temperature_c = (float)36.7;
    s.depth_m = 0.08;
    s.prf_hz = 4000.0;
    s.gain_db = 12.5;
    s.frames_sent = 123456;
    s.frames_dropped = 7;
    send_payload(se_pack_status(tx + SE_HEADER_SIZE, sizeof tx - SE_HEADER_SIZE, &s), SE_STATUS,
                 0, T0_US + 250);

    for (k = 0; k < 30; k++) {
        u8[k] = (uint8_t)((k * 37 + 11) % 256);
    }
    {
        const double spacing[2] = {2.5e-4, 3e-4}, origin[2] = {0.002, -0.0096};
        send_payload(image(SE_BMODE_FRAME, &h, 41, 1, SE_UINT8, SE_CARTESIAN, 6, 5, 0.0, spacing,
                           origin, u8),
                     SE_BMODE_FRAME, 0, T0_US + 1000);
    }
    for (k = 0; k < 12; k++) {
        u16[k] = (uint16_t)((k * 4099L + 17) % 65536);
    }
    {
        const double spacing[2] = {5e-4, 0.0125}, origin[2] = {0.001, -0.35};
        send_payload(image(SE_BMODE_FRAME, &h, 42, 1, SE_UINT16, SE_POLAR, 3, 4, 0.0, spacing,
                           origin, u16),
                     SE_BMODE_FRAME, 0, T0_US + 34333);
    }
    for (k = 0; k < 6; k++) {
        f32[k] = (float)((k * 5 - 7) * 0.0625);
    }
    {
        const double spacing[2] = {1e-3, 1e-3}, origin[2] = {0.0, 0.0};
        send_payload(image(SE_BMODE_FRAME, &h, 43, 1, SE_FLOAT32, SE_CARTESIAN, 2, 3, 0.0,
                           spacing, origin, f32),
                     SE_BMODE_FRAME, 0, T0_US + 67666);
    }
    for (k = 0; k < 12; k++) {
        iq[2 * k] = (float)(((k * 13) % 31 - 15) / 8.0);
        iq[2 * k + 1] = (float)(((k * 7) % 29 - 14) / 16.0);
    }
    {
        const double spacing[2] = {1.1e-4, 2.45e-4}, origin[2] = {0.002, -0.0235};
        send_payload(image(SE_IQ_FRAME, &h, 7, 1, SE_COMPLEX64, SE_CARTESIAN, 4, 3, 0.0, spacing,
                           origin, iq),
                     SE_IQ_FRAME, 0, T0_US + 100000); /* sequence 0xFFFFFFFF */
    }
    for (k = 0; k < 18; k++) {
        ens[2 * k] = (float)(((k * 11) % 23 - 11) * 0.25);
        ens[2 * k + 1] = (float)(((k * 5) % 19 - 9) * -0.125);
    }
    {
        const double spacing[2] = {1.1e-4, 2.45e-4}, origin[2] = {0.01, -0.001};
        send_payload(image(SE_IQ_ENSEMBLE, &h, 3, 3, SE_COMPLEX64, SE_CARTESIAN, 2, 3, 5000.0,
                           spacing, origin, ens),
                     SE_IQ_ENSEMBLE, 0, T0_US + 200000); /* sequence 0: the wrap */
    }
    send_imu(3, 0, T0_US + 200100);
    send_imu(2, 1, T0_US + 203850);
    send_payload(se_pack_error(tx + SE_HEADER_SIZE, sizeof tx - SE_HEADER_SIZE, 0x00020003u,
                               fault_text, sizeof fault_text - 1),
                 SE_ERROR, 0, T0_US + 250000);

    c.code = SE_CMD_SET_PRF;
    c.arg = 0;
    c.value = 4166.5;
    send_host_command(&c, COMMAND_SEQUENCE, 987654321u);
    a.sequence = COMMAND_SEQUENCE;
    a.code = SE_CMD_SET_PRF;
    a.result = SE_ACK_OK;
    a.applied_value = 4166.666666666667;
    send_payload(se_pack_ack(tx + SE_HEADER_SIZE, sizeof tx - SE_HEADER_SIZE, &a), SE_ACK, 0,
                 T0_US + 260000);
    c.code = SE_CMD_SET_MODE;
    c.arg = SE_MODE_DOPPLER;
    c.value = 0.0;
    send_host_command(&c, COMMAND_SEQUENCE + 1u, 987655000u);

    /* The probe rebooted: its clock restarted, the first message after it says so. */
    s.state = SE_STATE_IDLE;
    s.mode = SE_MODE_BMODE;
    s.temperature_c = (float)24.5;
    s.depth_m = 0.04;
    s.prf_hz = 0.0;
    s.gain_db = -3.25;
    s.frames_sent = 0;
    s.frames_dropped = 0;
    send_payload(se_pack_status(tx + SE_HEADER_SIZE, sizeof tx - SE_HEADER_SIZE, &s), SE_STATUS,
                 SE_FLAG_CLOCK_RESET, 17);
}

/* ---- decode ---------------------------------------------------------------------------------- */

static void print_message(const se_message *m, void *user)
{
    (void)user;
    printf("%u %" PRIu32 " %" PRIu64 " %" PRIu32 " %08" PRIx32 " %u\n", (unsigned)m->type,
           m->sequence, m->timestamp_us, m->payload_len, se_crc32(m->payload, m->payload_len),
           (unsigned)m->flags);
}

static int decode_stdin(size_t chunk, uint32_t max_payload)
{
    static uint8_t in[65536];
    se_decoder dec;
    size_t got;
    const se_stats *st = &dec.stats;
    if (chunk < 1 || chunk > sizeof in) {
        fprintf(stderr, "vectors: chunk size must be 1..%u\n", (unsigned)sizeof in);
        return 2;
    }
    if (se_decoder_init(&dec, rx, SE_OVERHEAD + (size_t)max_payload, max_payload) != SE_OK) {
        fprintf(stderr, "vectors: max payload must be 1..%lu\n", SE_DEFAULT_MAX_PAYLOAD);
        return 2;
    }
    while ((got = fread(in, 1, chunk, stdin)) > 0) {
        se_decoder_feed(&dec, in, got, print_message, NULL);
    }
    se_decoder_flush(&dec, print_message, NULL);
    printf("stat garbage_bytes %" PRIu32 "\n", st->garbage_bytes);
    printf("stat bad_header_crc %" PRIu32 "\n", st->bad_header_crc);
    printf("stat bad_version %" PRIu32 "\n", st->bad_version);
    printf("stat too_long %" PRIu32 "\n", st->too_long);
    printf("stat bad_payload_crc %" PRIu32 "\n", st->bad_payload_crc);
    printf("stat unknown_type %" PRIu32 "\n", st->unknown_type);
    printf("stat truncated %" PRIu32 "\n", st->truncated);
    printf("stat bad_payload %" PRIu32 "\n", st->bad_payload);
    printf("stat seq_lost %" PRIu32 "\n", st->seq_lost);
    printf("stat accepted %" PRIu32 "\n", st->accepted);
    return 0;
}

/* ---- selftest -------------------------------------------------------------------------------- */

static int failures;

static void expect(int ok, const char *what)
{
    if (!ok) {
        printf("FAIL %s\n", what);
        failures++;
    }
}

static void count_message(const se_message *m, void *user)
{
    se_command c;
    (void)m;
    (*(int *)user)++;
    if (m->type == SE_COMMAND) {
        expect(se_parse_command(m->payload, m->payload_len, &c) == SE_OK && c.code == SE_CMD_SET_GAIN
                   && c.arg == 0 && c.value == -6.5,
               "command parsed back");
    }
}

static int selftest(void)
{
    uint8_t buf[128], small[SE_OVERHEAD + 16];
    se_encoder enc;
    se_decoder dec;
    se_command c = {SE_CMD_SET_GAIN, 0, -6.5};
    se_ack a;
    long n;
    int seen = 0;
    uint32_t seqs[] = {0xFFFFFFFDu, 0xFFFFFFFEu, 1, 2, 7, 3, 4, 5};
    size_t i, total = 0;

    expect(se_crc32("123456789", 9) == 0xCBF43926u, "CRC-32 check value");
    expect(se_crc32_update(se_crc32("1234", 4), "56789", 5) == 0xCBF43926u, "CRC-32 in parts");
    expect(se_crc32(NULL, 0) == 0u, "CRC-32 of nothing");

    /* Buffers one byte too small are refused and the sequence number does not advance. */
    se_encoder_init(&enc, 0xFFFFFFFFu);
    n = se_pack_command(buf + SE_HEADER_SIZE, SE_COMMAND_SIZE - 1, &c);
    expect(n == SE_ERR_BUFFER, "command builder: buffer too small");
    n = se_pack_command(buf + SE_HEADER_SIZE, SE_COMMAND_SIZE, &c);
    expect(n == (long)SE_COMMAND_SIZE, "command builder");
    expect(se_encoder_frame(&enc, buf, SE_OVERHEAD + SE_COMMAND_SIZE - 1, SE_COMMAND, 0, 1,
                            buf + SE_HEADER_SIZE, SE_COMMAND_SIZE)
               == SE_ERR_BUFFER,
           "frame: buffer too small");
    expect(enc.next_sequence == 0xFFFFFFFFu, "sequence kept after an error");
    n = se_encoder_frame(&enc, buf, SE_OVERHEAD + SE_COMMAND_SIZE, SE_COMMAND, 0, 1,
                         buf + SE_HEADER_SIZE, SE_COMMAND_SIZE); /* in place */
    expect(n == (long)(SE_OVERHEAD + SE_COMMAND_SIZE), "frame in place");
    expect(enc.next_sequence == 0u, "sequence wraps");
    expect(se_frame_write(buf, sizeof buf, SE_ACK, 0, 0, 0, NULL, SE_MAX_PAYLOAD + 1u)
               == SE_ERR_ARG,
           "payload above the protocol limit");
    n = se_frame_write(buf + 64, 64, 0x7E, 0, 9, 9, NULL, 0);
    expect(n == (long)SE_OVERHEAD && se_crc32(buf + 64 + SE_HEADER_SIZE, 0) == 0u
               && buf[64 + 32] == 0 && buf[64 + 35] == 0,
           "empty payload, CRC 0");

    /* Builders refuse what the protocol does not allow. */
    a.sequence = 1;
    a.code = 8;
    a.result = 0;
    a.applied_value = 0.0;
    expect(se_pack_ack(buf, sizeof buf, &a) == SE_ERR_ARG, "ack with unknown command code");
    expect(se_pack_error(buf, sizeof buf, 1, "x", SE_MAX_ERROR_TEXT + 1) == SE_ERR_ARG,
           "error text too long");
    expect(se_pack_imu(buf, sizeof buf, 0, NULL, NULL, NULL, NULL) == SE_ERR_ARG, "empty IMU");

    /* A decoder whose buffer cannot hold a bounded message is refused. */
    expect(se_decoder_init(&dec, small, sizeof small, 17) == SE_ERR_ARG, "decoder buffer check");
    expect(se_decoder_init(&dec, small, sizeof small, 0) == SE_ERR_ARG, "decoder zero bound");
    expect(se_decoder_init(&dec, small, sizeof small, 16) == SE_OK, "decoder init");
    expect(se_decoder_limit(&dec, SE_ACK) == 16u && se_decoder_limit(&dec, SE_BMODE_FRAME) == 16u,
           "per-type bounds capped by max_payload");

    /* Sequence tracking (rule 7): 0xFFFFFFFE -> 1 loses 2 across the wrap, 2 -> 7 loses 4,
     * 7 -> 3 goes backwards (a restart: not counted). Messages are fed one byte at a time
     * through the 52-byte buffer. */
    for (i = 0; i < sizeof seqs / sizeof seqs[0]; i++) {
        uint8_t payload[SE_COMMAND_SIZE];
        (void)se_pack_command(payload, sizeof payload, &c);
        n = se_frame_write(buf, sizeof buf, SE_COMMAND, 0, seqs[i], i, payload, sizeof payload);
        for (total = 0; total < (size_t)n; total++) {
            se_decoder_feed(&dec, buf + total, 1, count_message, &seen);
        }
    }
    se_decoder_flush(&dec, count_message, &seen);
    expect(seen == 8 && dec.stats.accepted == 8u, "all messages through a minimal buffer");
    expect(dec.stats.seq_lost == 6u, "sequence gaps counted");
    expect(dec.stats.garbage_bytes == 0u, "no garbage");

    printf(failures ? "selftest FAILED (%d)\n" : "selftest ok\n", failures);
    return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "encode") == 0) {
        encode_canonical();
        return fflush(stdout) == 0 ? 0 : 1;
    }
    if (argc >= 2 && strcmp(argv[1], "decode") == 0) {
        size_t chunk = argc >= 3 ? (size_t)strtoul(argv[2], NULL, 10) : 4096u;
        unsigned long max = argc >= 4 ? strtoul(argv[3], NULL, 10) : SE_DEFAULT_MAX_PAYLOAD;
        if (max > SE_DEFAULT_MAX_PAYLOAD) {
            max = 0; /* refused by decode_stdin: the static buffer holds 64 MiB */
        }
        return decode_stdin(chunk, (uint32_t)max);
    }
    if (argc >= 3 && strcmp(argv[1], "crc32") == 0) {
        printf("%08" PRIx32 "\n", se_crc32(argv[2], strlen(argv[2])));
        return 0;
    }
    if (argc >= 2 && strcmp(argv[1], "selftest") == 0) {
        return selftest();
    }
    fprintf(stderr, "usage: %s encode | decode [CHUNK [MAX_PAYLOAD]] | crc32 TEXT | selftest\n",
            argv[0]);
    return 2;
}
