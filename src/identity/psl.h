/*
 * The Public Suffix List (https://publicsuffix.org/list/), our own parser
 * and matcher (pure; the file is read by psl_load_file() in load.c).
 *
 * Matching follows the list's published algorithm: a rule matches a name
 * when its labels equal the name's rightmost labels, "*" matching any one
 * label; an exception rule ("!x.y") prevails over everything and its
 * public suffix is the rule minus its leftmost label; otherwise the rule
 * with the most labels prevails; when none matches the implicit rule "*"
 * does (the top-level label alone is the public suffix). The registrable
 * ("organisational") domain is the public suffix plus one more label.
 *
 * The list has an ICANN section (suffixes under registry policy) and a
 * PRIVATE section (suffixes operators ask for, such as each EC2 host name
 * under *.compute-1.amazonaws.com). Lookups choose: the full list for
 * "same organisation?" (two EC2 customers are not one organisation), the
 * ICANN section alone for "is this a host under a real registry?" (an EC2
 * host name is a perfectly good EHLO name). Rules in Unicode are converted to A-labels
 * (RFC 3492 Punycode) at load, since names from EHLO and DNS are ASCII.
 */
#ifndef EHLO_IDENTITY_PSL_H
#define EHLO_IDENTITY_PSL_H

#include <stdbool.h>
#include <stddef.h>

struct psl;

/*
 * Parses the list's text. Never NULL (allocation failure aborts). Lines
 * that are not rules the algorithm supports (a "*" not as the leftmost
 * label, bad UTF-8, invalid labels) are skipped and counted in
 * psl_skipped(). The caller owns the result; free it with psl_free().
 */
struct psl *psl_parse(const char *text, size_t len);
void        psl_free(struct psl **pp);
size_t      psl_rule_count(const struct psl *psl);
size_t      psl_skipped(const struct psl *psl);

struct psl_match {
	size_t suffix_off;   /* name + suffix_off is the public suffix */
	bool   listed;       /* a rule of the list prevailed (not implicit "*") */
	bool   has_regdom;   /* the name is longer than its public suffix */
	size_t regdom_off;   /* name + regdom_off is the registrable domain */
};

enum {
	PSL_ICANN_ONLY = 1u << 0,   /* ignore the PRIVATE section's rules */
};

/*
 * Looks name[0..len) up. name must be a valid, lowercase host name without
 * a trailing dot (id_hostname_check output). psl may be NULL: then only
 * the implicit rule "*" applies and listed is false. opts: PSL_ICANN_ONLY
 * or 0 (the whole list).
 */
void psl_lookup(const struct psl *psl, const char *name, size_t len,
                unsigned opts, struct psl_match *m);

#endif
