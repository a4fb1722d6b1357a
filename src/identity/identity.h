/*
 * The client-identity engine (pure): given the EHLO/HELO name, the client
 * address and the DNS answers gathered so far, say for each check whether
 * it holds. No I/O, no DNS, no clock: the DNS layer (src/dns) performs the
 * lookups identity_lookups() asks for and hands the answers back in
 * struct id_input; the policy layer (src/policy) maps each result to an
 * action. docs/identity.md describes every check, its RFC basis and its
 * false-positive risks.
 *
 * Results use the RFC 8601 vocabulary (§2.7): pass, fail, none (the check
 * does not apply: forward_match for an address literal), temperror (a DNS
 * lookup it depends on timed out, SERVFAILed or is still unanswered; never
 * "fail" for a DNS trouble), permerror (the check cannot be evaluated
 * because of a permanent problem with its input, such as no PTR data for
 * fcrdns). An EHLO name that fails syntax is judged by the syntax check
 * alone: every other check on the name is none for it ("not evaluated"),
 * so that helo_check_syntax's action decides what happens to such a name.
 * A result whose DNS answer has not arrived yet is temperror with
 * pending set, so the caller can tell "still waiting" from "gave up".
 *
 * Staging (what the session knows when):
 *   connect   client address -> PTR lookup of the client address
 *   PTR done  valid PTR names (at most ID_MAX_PTR) -> A (IPv4 client) or
 *             AAAA (IPv6 client) of each, for fcrdns and ptr_match
 *   EHLO      name -> its A and AAAA; its MX only if both are NODATA
 * identity_lookups() lists the lookups whose inputs are known and whose
 * answers are still ID_DNS_UNASKED; the caller marks a lookup
 * ID_DNS_PENDING when it sends it, and fills in the answer when it comes.
 * When the caller's DNS deadline passes it turns every PENDING into
 * ID_DNS_TIMEOUT and evaluates: no verdict waits for DNS beyond that.
 */
#ifndef EHLO_IDENTITY_IDENTITY_H
#define EHLO_IDENTITY_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>

#include "identity/generic.h"
#include "identity/hostname.h"
#include "identity/psl.h"
#include "lib/buf.h"

/* At most this many PTR names are considered (the rest are ignored):
 * a PTR set is attacker-sized, and each name costs a forward lookup. */
#define ID_MAX_PTR      10
#define ID_REASON_MAX   128
/* At most this many bytes of an invalid EHLO name are echoed in a reply. */
#define ID_ECHO_MAX     64
/* 1 PTR + A, AAAA, MX of the EHLO name + one per PTR name. */
#define ID_MAX_LOOKUPS  (4 + ID_MAX_PTR)

enum id_result { ID_NONE, ID_PASS, ID_FAIL, ID_TEMPERROR, ID_PERMERROR };

enum id_check {
	IDC_SYNTAX, IDC_FQDN, IDC_LITERAL_MATCH, IDC_RESOLVES,
	IDC_FORWARD_MATCH, IDC_PTR, IDC_FCRDNS, IDC_PTR_MATCH, IDC_GENERIC,
	IDC_SELF_CLAIM, IDC_CONSISTENCY, IDC_COUNT
};

#define IDC_BIT(c)  (1u << (c))
#define IDC_ALL     ((1u << IDC_COUNT) - 1)

/* "syntax", "fqdn", ... as in the configuration key helo_check_<name>;
 * NULL for an out-of-range value. */
const char *id_check_name(enum id_check c);
/* The inverse; false for an unknown name. */
bool        id_check_from_name(const char *name, enum id_check *out);
/* "none", "pass", "fail", "temperror", "permerror". */
const char *id_result_name(enum id_result r);

enum id_dns_status {
	ID_DNS_UNASKED = 0,  /* not sent (the zero value) */
	ID_DNS_PENDING,      /* sent, no answer yet */
	ID_DNS_OK,           /* NOERROR; n records (n == 0 counts as NODATA) */
	ID_DNS_NXDOMAIN,     /* RCODE 3 */
	ID_DNS_NODATA,       /* NOERROR without records of the type */
	ID_DNS_SERVFAIL,     /* RCODE 2, REFUSED, or another resolver error */
	ID_DNS_TIMEOUT,      /* no answer within the deadline */
	ID_DNS_BOGUS,        /* DNSSEC validation failed */
};

/*
 * One lookup's answer. The arrays are the caller's and are only read.
 * For PTR and MX, names[0..n) are the record data as the resolver gave
 * them (presentation form, a trailing dot is fine); every one is validated
 * here before use. For MX the preference is not needed. For A/AAAA,
 * addrs[0..n).
 */
struct id_dns_answer {
	enum id_dns_status    status;
	size_t                n;
	const char *const    *names;
	const struct id_addr *addrs;
};

struct id_input {
	/* The argument of the latest HELO/EHLO, NULL before one. */
	const char           *helo;
	bool                  is_ehlo;
	/* The argument of the previous HELO/EHLO in this session, or NULL. */
	const char           *prev_helo;
	/* The client's address (after PROXY, if any). */
	struct id_addr        client;
	/* Our own names (myhostname, listener names) and addresses, for
	 * self_claim. Lowercase or not; compared case-insensitively. */
	const char *const    *our_names;
	size_t                n_our_names;
	const struct id_addr *our_addrs;
	size_t                n_our_addrs;

	struct id_dns_answer  ptr;        /* PTR of the client address */
	struct id_dns_answer  helo_a;     /* A of the EHLO name */
	struct id_dns_answer  helo_aaaa;  /* AAAA of the EHLO name */
	struct id_dns_answer  helo_mx;    /* MX, asked only if A+AAAA NODATA */
	/* ptr_addr[i]: A (IPv4 client) or AAAA (IPv6 client) of the i-th
	 * selected PTR name, as listed by identity_lookups() (slot
	 * ID_SLOT_PTR_ADDR, index i) or id_ptr_select(). */
	struct id_dns_answer  ptr_addr[ID_MAX_PTR];

	/* ptr_match: the EHLO name must equal a forward-confirmed PTR name;
	 * sharing its organisational domain is not enough. */
	bool                  ptr_match_exact;
};

struct id_check_result {
	enum id_result r;
	bool           pending;   /* temperror because an answer is awaited */
	char           reason[ID_REASON_MAX];  /* printable ASCII, no peer
	                                          bytes that failed validation */
};

struct id_verdict {
	struct id_check_result c[IDC_COUNT];
	/* RFC 8601 §2.7.3 iprev, derived from the PTR and its forward
	 * lookups: pass, fail, temperror, permerror (no PTR data), or none
	 * when no PTR answer exists yet. */
	enum id_result iprev;
	bool           iprev_pending;
	/* The EHLO name, lowercase and validated ("" if absent or invalid;
	 * an address literal as given). Safe to log and to put in headers. */
	char           helo[ID_NAME_MAX + 1];
	/* An invalid EHLO argument as a reply may echo it: its bytes
	 * 0x21..0x7e other than '<' and '>', at most ID_ECHO_MAX of them (so
	 * never CR, LF, space or anything that could end or split a reply
	 * line); "" for a valid name (use helo) or when nothing is left. */
	char           helo_echo[ID_ECHO_MAX + 1];
	/* The PTR names considered, validated and lowercase, and which were
	 * forward-confirmed. */
	size_t         n_ptr;
	char           ptr_names[ID_MAX_PTR][ID_NAME_MAX + 1];
	bool           ptr_confirmed[ID_MAX_PTR];
};

/*
 * Evaluates every check. psl and gp may be NULL (fqdn and ptr_match then
 * fall back to "the last two labels"; generic tests only the embedded
 * address). Fills *out completely; never fails.
 */
void identity_evaluate(const struct id_input *in, const struct psl *psl,
                       const struct generic_patterns *gp,
                       struct id_verdict *out);

/*
 * The PTR names this module considers: those of in->ptr (if ID_DNS_OK)
 * that pass host-name validation, lowercased, first occurrence of each,
 * in answer order, at most ID_MAX_PTR. Writes them to names and returns
 * how many. Entry i corresponds to in->ptr_addr[i].
 */
size_t id_ptr_select(const struct id_input *in,
                     char names[ID_MAX_PTR][ID_NAME_MAX + 1]);

enum id_lookup_type { ID_LOOKUP_PTR, ID_LOOKUP_A, ID_LOOKUP_AAAA,
                      ID_LOOKUP_MX };
enum id_lookup_slot { ID_SLOT_PTR, ID_SLOT_HELO_A, ID_SLOT_HELO_AAAA,
                      ID_SLOT_HELO_MX, ID_SLOT_PTR_ADDR };

struct id_lookup {
	enum id_lookup_type type;
	enum id_lookup_slot slot;
	size_t              index;   /* for ID_SLOT_PTR_ADDR */
	/* The query name, validated: "4.3.2.1.in-addr.arpa" for PTR. */
	char                qname[ID_NAME_MAX + 1];
};

/*
 * Lists the lookups still needed for the checks in the mask checks
 * (IDC_BIT()s; IDC_ALL for every check): those whose inputs are known and
 * whose answer slot is ID_DNS_UNASKED. Writes at most max entries to out
 * (ID_MAX_LOOKUPS always suffices) and returns how many. Call it again
 * after each answer: the PTR answer makes the per-name lookups appear,
 * the A/AAAA answers may make the MX lookup appear.
 */
size_t identity_lookups(const struct id_input *in, unsigned checks,
                        struct id_lookup *out, size_t max);

/*
 * Appends an Authentication-Results header field (RFC 8601) to out,
 * without a final line ending, folded with eol followed by a tab:
 *
 *   Authentication-Results: mx.example.net;
 *   	iprev=pass policy.iprev=192.0.2.1
 *   	(ehlo=mail.example.com syntax=pass fqdn=pass literal_match=none
 *   	 resolves=pass ...)
 *
 * iprev is the only registered method we can speak for (RFC 8601 §2.7.3,
 * property policy.iprev = the client address, quoted for IPv6 since ':'
 * is not a token character). The per-check results go in a comment: an
 * unregistered method would make RFC 8601 §2.7.6 consumers ignore the whole
 * field. When the PTR was never looked up the field is "; none" plus the
 * comment. Returns false and appends nothing if authserv_id is not a valid
 * host name (it is a config value, but it lands in a header).
 */
bool identity_auth_results(struct buf *out, const char *authserv_id,
                           const struct id_input *in,
                           const struct id_verdict *v, const char *eol);

/*
 * RFC 8601 §5: a receiver that adds Authentication-Results must remove any
 * such field already in the message that claims its own authserv-id, or a
 * sender could forge our verdict. msg[0..*len) is a message with LF line
 * ends; fields of the header section (up to the first empty line) named
 * Authentication-Results whose authserv-id equals authserv_id
 * (case-insensitive) are removed with their continuation lines, in place.
 * Returns how many were removed; *len is updated.
 */
size_t identity_strip_auth_results(char *msg, size_t *len, const char *authserv_id);

#endif
