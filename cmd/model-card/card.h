/* card.h — the model card, rendered from the logs and the two model folders. Deterministic: the
 * same inputs give the same bytes (no dates, no host names, inputs in the order given). */
#ifndef MC_CARD_H
#define MC_CARD_H
#include "folder.h"
#include "logs.h"
#include "sbuf.h"

typedef struct mc_card_opts {
    const char *name;     /* the pruned model's name (title, loading snippet) */
    const char *base_id;  /* base model id for the metadata (hub id) */
    const char *license;  /* the base's license (its README front matter), or NULL */
    const mc_arch *base;  /* never NULL */
    const mc_arch *model; /* the pruned model's folder, or NULL */
} mc_card_opts;

void card_render(sbuf *b, const mc_logs *L, const mc_card_opts *o);
#endif
