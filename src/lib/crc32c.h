/*
 * CRC-32C (Castagnoli, RFC 3720 §B.4 polynomial 0x1EDC6F41, reflected
 * 0x82F63B78), as used by iSCSI, ext4 and SCTP. Pure.
 *
 * crc32c(0, p, n) is the checksum of p; feeding pieces in order,
 * crc = crc32c(crc, next, len), gives the checksum of their concatenation.
 * Check value: crc32c(0, "123456789", 9) == 0xE3069283.
 * Uses the SSE 4.2 crc32 instruction when the CPU has it (x86-64).
 */
#ifndef EHLO_CRC32C_H
#define EHLO_CRC32C_H

#include <stddef.h>
#include <stdint.h>

uint32_t crc32c(uint32_t crc, const void *p, size_t n);

/* The same, always by table (the path of CPUs without SSE 4.2; tested). */
uint32_t crc32c_sw(uint32_t crc, const void *p, size_t n);

#endif
