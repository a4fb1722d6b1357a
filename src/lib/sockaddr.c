#include "lib/sockaddr.h"

#include <netinet/in.h>
#include <stdio.h>

socklen_t
sockaddr_len(const struct sockaddr *sa)
{
	switch (sa->sa_family) {
	case AF_INET: return sizeof(struct sockaddr_in);
	case AF_INET6: return sizeof(struct sockaddr_in6);
	default: return 0;
	}
}

unsigned
sockaddr_text(const struct sockaddr *sa, char ip[INET6_ADDRSTRLEN])
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in4 = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &in4->sin_addr, ip, INET6_ADDRSTRLEN);
		return ntohs(in4->sin_port);
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, ip, INET6_ADDRSTRLEN);
		return ntohs(in6->sin6_port);
	}
	snprintf(ip, INET6_ADDRSTRLEN, "?");
	return 0;
}

struct timeval
timeval_ms(long long ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };
	return tv;
}
