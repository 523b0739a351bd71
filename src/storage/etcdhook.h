/*
 * src/storage/etcdhook.h - a test hook and a counter of the etcd backend.
 * Internal.
 *
 * While kivis__etcd_lose_replies is above 0, each reply to a commit's etcd
 * txn is thrown away after it arrived (and the counter lowered), as if the
 * connection had broken after the cluster applied the txn: the backend
 * then goes through its lost-reply path (resend to the next member, whose
 * answer tells whether the first send was applied).  tests/test_etcd.c
 * sets it; nothing else may.
 */
#ifndef KIVIS_ETCDHOOK_H
#define KIVIS_ETCDHOOK_H

#include <stdatomic.h>

extern atomic_int kivis__etcd_lose_replies;

/* Requests the process's etcd storages sent and waited for (each attempt,
 * a resend to another member included; the feeds' watch streams not): the
 * benchmark's round trips (bench/engines/eng_etcd.c).  Only ever grows. */
extern atomic_ullong kivis__etcd_requests;

#endif /* KIVIS_ETCDHOOK_H */
