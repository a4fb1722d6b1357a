/* Small helpers for IPv4/IPv6 socket addresses, shared by every layer that
 * prints or copies one. */
#ifndef EHLO_SOCKADDR_H
#define EHLO_SOCKADDR_H

#include <arpa/inet.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/time.h>

/* The length of sa's family's address structure (0 for other families). */
socklen_t sockaddr_len(const struct sockaddr *sa);

/* Writes the numeric address of sa into ip (INET6_ADDRSTRLEN bytes; "?" for
 * other families) and returns its port in host order (0 if none). */
unsigned sockaddr_text(const struct sockaddr *sa, char ip[INET6_ADDRSTRLEN]);

/* A timeval of ms milliseconds (tv_usec always below 1,000,000). */
struct timeval timeval_ms(long long ms);

#endif
