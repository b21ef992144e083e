/* tok_post.c — the post-processor: tokenizer.json's "post_processor" (TemplateProcessing,
 * Roberta/BertProcessing, Sequence, ByteLevel) read into the single-sequence template of ids before
 * and after the text (tpost), which tok_encode.c applies. */
#include "tok_internal.h"
#include "tok_json.h"
#include <stdlib.h>
#include <string.h>

int tok_ids_append(int32_t **v, int *n, int32_t id) {
    int32_t *nv = realloc(*v, (size_t)(*n + 1) * sizeof *nv);
    if (!nv) return -1;
    nv[(*n)++] = id;
    *v = nv;
    return 0;
}

int tok_post_parse(lop_tokenizer *t, const tj *o, tpost *pp, lop_err *e) {
    const char *ty = tok_type_of(o);
    if (!strcmp(ty, "ByteLevel")) return 0;
    if (!strcmp(ty, "Sequence")) {
        const tj *l = tj_get(o, "processors");
        if (!l || l->type != TJ_ARR) return lop_fail(e, "post_processor Sequence without a list");
        for (uint32_t i = 0; i < l->n; i++) {
            tpost inner = {0};
            if (tok_post_parse(t, &l->kids[i], &inner, e)) { free(inner.pre); free(inner.post); return -1; }
            /* a later processor wraps the earlier result */
            int32_t *pre = NULL; int npre = 0;
            int bad = 0;
            for (int k = 0; k < inner.npre; k++) bad |= tok_ids_append(&pre, &npre, inner.pre[k]);
            for (int k = 0; k < pp->npre; k++) bad |= tok_ids_append(&pre, &npre, pp->pre[k]);
            for (int k = 0; k < inner.npost; k++) bad |= tok_ids_append(&pp->post, &pp->npost, inner.post[k]);
            free(pp->pre); pp->pre = pre; pp->npre = npre;
            free(inner.pre); free(inner.post);
            if (bad) return lop_fail(e, "out of memory");
        }
        return 0;
    }
    if (!strcmp(ty, "TemplateProcessing")) {
        const tj *single = tj_get(o, "single"), *sp = tj_get(o, "special_tokens");
        if (!single || single->type != TJ_ARR) return lop_fail(e, "TemplateProcessing without 'single'");
        int seen_a = 0;
        for (uint32_t i = 0; i < single->n; i++) {
            const tj *it = &single->kids[i];
            if (tj_get(it, "Sequence")) { seen_a = 1; continue; }
            const tj *st = tj_get(it, "SpecialToken");
            const char *name = st ? tj_str(st, "id", NULL) : NULL;
            if (!name) return lop_fail(e, "TemplateProcessing: bad item in 'single'");
            const tj *def = tj_get(sp, name), *ids = def ? tj_get(def, "ids") : NULL;
            if (!ids || ids->type != TJ_ARR) return lop_fail(e, "TemplateProcessing: special token '%s' undefined", name);
            for (uint32_t k = 0; k < ids->n; k++) {
                if (ids->kids[k].type != TJ_NUM) return lop_fail(e, "TemplateProcessing: bad id for '%s'", name);
                int32_t id = (int32_t)ids->kids[k].num;
                if (seen_a ? tok_ids_append(&pp->post, &pp->npost, id) : tok_ids_append(&pp->pre, &pp->npre, id))
                    return lop_fail(e, "out of memory");
            }
        }
        return 0;
    }
    if (!strcmp(ty, "RobertaProcessing") || !strcmp(ty, "BertProcessing")) {
        const tj *cls = tj_get(o, "cls"), *sep = tj_get(o, "sep");
        if (!cls || cls->type != TJ_ARR || cls->n != 2 || cls->kids[1].type != TJ_NUM ||
            !sep || sep->type != TJ_ARR || sep->n != 2 || sep->kids[1].type != TJ_NUM)
            return lop_fail(e, "%s: bad cls/sep", ty);
        if (tok_ids_append(&pp->pre, &pp->npre, (int32_t)cls->kids[1].num) ||
            tok_ids_append(&pp->post, &pp->npost, (int32_t)sep->kids[1].num))
            return lop_fail(e, "out of memory");
        return 0;
    }
    (void)t;
    return lop_fail(e, "unsupported post_processor '%s'", ty);
}
