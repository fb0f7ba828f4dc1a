/* poshclient: Lua 5.4 binding of libposhclient's asynchronous C API, for event loops that
 * must never block (Prosody first).
 *
 *   local poshclient = require "poshclient"
 *   local client, err = poshclient.open(socket_path_or_nil, timeout_seconds_or_nil)
 *   client:getfd()                       -- readable while completions wait (server.watchfd)
 *   local id, err = client:verify(domain, service_or_nil, { der1, der2, ... })
 *   local id, err = client:lookup(domain, service_or_nil, refresh)
 *   client:cancel(id)                    -- true, or nil and a message
 *   for _, c in ipairs(client:collect()) do ... end   -- every waiting completion
 *   client:pending(); client:close()     -- close is idempotent; __gc and __close call it
 *
 * Every call started gets exactly one completion table (see CompletionToTable). Nothing
 * here blocks: starting a call only queues it for gRPC's threads, and collect() only takes
 * what has already arrived. Errors of the API (bad arguments, closed client) are returned
 * as nil plus a message, never raised, except for argument types (luaL_check*). */
#include <lauxlib.h>
#include <lua.h>
#include <stdlib.h>
#include <string.h>

#include "posh/posh_client.h"

#define CLIENT_MT "poshclient.client"
/* More certificates than any real chain; bounds the allocation a caller can ask for. */
#define MAX_CHAIN 64

typedef struct {
  posh_client* client; /* NULL once closed */
} LuaClient;

static LuaClient* CheckClient(lua_State* L) { return (LuaClient*)luaL_checkudata(L, 1, CLIENT_MT); }

/* The open client at index 1, or NULL with nil and a message pushed. */
static posh_client* OpenClient(lua_State* L) {
  LuaClient* lc = CheckClient(L);
  if (!lc->client) {
    lua_pushnil(L);
    lua_pushliteral(L, "poshclient: the client is closed");
  }
  return lc->client;
}

static int PushStartFailure(lua_State* L, int code) {
  const char* why = posh_client_last_error();
  lua_pushnil(L);
  lua_pushstring(L, why && *why ? why : posh_strerror(code));
  lua_pushinteger(L, code);
  return 3;
}

/* poshclient.open([socket_path [, timeout_seconds]]) -> client | nil, message */
static int l_open(lua_State* L) {
  const char* path = luaL_optstring(L, 1, NULL);
  lua_Number timeout = luaL_optnumber(L, 2, 0);
  if (timeout < 0 || timeout > 86400)
    return luaL_argerror(L, 2, "timeout out of range (0-86400 s)");
  LuaClient* lc = (LuaClient*)lua_newuserdatauv(L, sizeof(LuaClient), 0);
  lc->client = NULL;
  luaL_setmetatable(L, CLIENT_MT);
  /* timeout 0 (or absent): the library's default. Round up so 0.0001 s is not "default". */
  int timeout_ms = timeout > 0 ? (int)(timeout * 1000.0 + 0.999) : 0;
  lc->client = posh_client_open(path, timeout_ms);
  if (!lc->client) {
    lua_pushnil(L);
    lua_pushstring(L, posh_client_last_error());
    return 2;
  }
  return 1;
}

static int l_getfd(lua_State* L) {
  LuaClient* lc = CheckClient(L);
  lua_pushinteger(L, lc->client ? posh_client_fd(lc->client) : -1);
  return 1;
}

static int l_pending(lua_State* L) {
  LuaClient* lc = CheckClient(L);
  lua_pushinteger(L, lc->client ? (lua_Integer)posh_pending(lc->client) : 0);
  return 1;
}

static int l_close(lua_State* L) {
  LuaClient* lc = CheckClient(L);
  if (lc->client) {
    posh_client* c = lc->client;
    lc->client = NULL;
    posh_client_close(c);
  }
  return 0;
}

/* client:lookup(domain [, service [, refresh]]) -> id | nil, message, code */
static int l_lookup(lua_State* L) {
  posh_client* c = OpenClient(L);
  const char* domain = luaL_checkstring(L, 2);
  const char* service = luaL_optstring(L, 3, NULL);
  int refresh = lua_toboolean(L, 4);
  if (!c) return 2;
  posh_call_id id = 0;
  int rc = posh_lookup_start(c, domain, service, refresh, NULL, &id);
  if (rc != POSH_OK) return PushStartFailure(L, rc);
  lua_pushinteger(L, (lua_Integer)id);
  return 1;
}

/* client:verify(domain, service_or_nil, { der, ... }) -> id | nil, message, code */
static int l_verify(lua_State* L) {
  posh_client* c = OpenClient(L);
  const char* domain = luaL_checkstring(L, 2);
  const char* service = luaL_optstring(L, 3, NULL);
  luaL_checktype(L, 4, LUA_TTABLE);
  if (!c) return 2;
  lua_Integer n = luaL_len(L, 4);
  if (n < 1 || n > MAX_CHAIN) {
    lua_pushnil(L);
    lua_pushliteral(L, "poshclient: the chain must hold 1 to 64 DER certificates, leaf first");
    lua_pushinteger(L, POSH_EINVAL);
    return 3;
  }
  const unsigned char* certs[MAX_CHAIN];
  size_t lengths[MAX_CHAIN];
  for (lua_Integer i = 1; i <= n; ++i) {
    /* The strings stay referenced by the table (argument 4) while we use them, and the
     * library copies them before posh_verify_start returns. */
    if (lua_geti(L, 4, i) != LUA_TSTRING) {
      lua_pushnil(L);
      lua_pushfstring(L, "poshclient: chain entry %d is not a string", (int)i);
      lua_pushinteger(L, POSH_EINVAL);
      return 3;
    }
    certs[i - 1] = (const unsigned char*)lua_tolstring(L, -1, &lengths[i - 1]);
    lua_pop(L, 1);
  }
  posh_call_id id = 0;
  int rc = posh_verify_start(c, domain, service, certs, lengths, (size_t)n, NULL, &id);
  if (rc != POSH_OK) return PushStartFailure(L, rc);
  lua_pushinteger(L, (lua_Integer)id);
  return 1;
}

/* client:cancel(id) -> true | nil, message */
static int l_cancel(lua_State* L) {
  posh_client* c = OpenClient(L);
  lua_Integer id = luaL_checkinteger(L, 2);
  if (!c) return 2;
  if (posh_cancel(c, (posh_call_id)id) != POSH_OK) {
    lua_pushnil(L);
    lua_pushliteral(L, "poshclient: no such pending call");
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

static void SetString(lua_State* L, const char* key, const char* value) {
  lua_pushstring(L, value ? value : "");
  lua_setfield(L, -2, key);
}

static void SetInteger(lua_State* L, const char* key, lua_Integer value) {
  lua_pushinteger(L, value);
  lua_setfield(L, -2, key);
}

static void SetBoolean(lua_State* L, const char* key, int value) {
  lua_pushboolean(L, value);
  lua_setfield(L, -2, key);
}

static const char* VerdictName(int verdict) {
  switch (verdict) {
    case POSH_VERDICT_VERIFIED:
      return "verified";
    case POSH_VERDICT_NOT_VERIFIED:
      return "not_verified";
    case POSH_VERDICT_NO_POSH:
      return "no_posh";
    default:
      return "error";
  }
}

static const char* StatusName(int status) {
  switch (status) {
    case POSH_STATUS_FOUND:
      return "found";
    case POSH_STATUS_NOT_FOUND:
      return "not_found";
    default:
      return "error";
  }
}

static void PushLookupFields(lua_State* L, const posh_lookup_result* r) {
  SetString(L, "status", StatusName(r->status));
  SetString(L, "domain", r->domain);
  SetString(L, "service", r->service);
  SetString(L, "delegated_to", r->delegated_to);
  SetString(L, "format", r->format);
  SetInteger(L, "expires_at", r->expires_at);
  SetBoolean(L, "from_cache", r->from_cache);
  if (r->error && *r->error) SetString(L, "error", r->error);
  lua_createtable(L, (int)r->key_count, 0);
  for (size_t i = 0; i < r->key_count; ++i) {
    const posh_key* k = &r->keys[i];
    lua_createtable(L, 0, 3);
    SetString(L, "kid", k->kid);
    SetInteger(L, "not_after", k->not_after);
    lua_createtable(L, (int)k->fingerprint_count, 0);
    for (size_t j = 0; j < k->fingerprint_count; ++j) {
      lua_createtable(L, 0, 2);
      SetString(L, "hash", k->fingerprints[j].hash);
      SetString(L, "value", k->fingerprints[j].value);
      lua_rawseti(L, -2, (lua_Integer)j + 1);
    }
    lua_setfield(L, -2, "fingerprints");
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_setfield(L, -2, "keys");
}

static void PushVerifyFields(lua_State* L, const posh_verify_result* r) {
  SetString(L, "verdict", VerdictName(r->verdict));
  SetString(L, "domain", r->domain);
  SetString(L, "service", r->service);
  SetString(L, "delegated_to", r->delegated_to);
  SetString(L, "reason", r->reason);
  SetString(L, "matched_kid", r->matched_kid);
  SetBoolean(L, "from_cache", r->from_cache);
}

/* One completion as a table:
 *   id, kind ("lookup" | "verify"), code (a posh_code; 125 = cancelled),
 *   error (only when the call itself failed: unreachable daemon, bad argument, cancelled),
 *   verify: verdict, domain, service, delegated_to, reason, matched_kid, from_cache
 *   lookup: status, domain, service, delegated_to, format, expires_at, from_cache,
 *           error (document/retrieval error when status is "error"), keys */
static void PushCompletion(lua_State* L, const posh_completion* c) {
  lua_createtable(L, 0, 12);
  SetInteger(L, "id", (lua_Integer)c->id);
  SetString(L, "kind", c->kind == POSH_CALL_VERIFY ? "verify" : "lookup");
  SetInteger(L, "code", c->code);
  if (c->lookup) {
    PushLookupFields(L, c->lookup);
  } else if (c->verify) {
    PushVerifyFields(L, c->verify);
  } else {
    SetString(L, "error", c->error && *c->error ? c->error : posh_strerror(c->code));
  }
}

/* client:collect() -> { completion, ... } (empty when none waits) */
static int l_collect(lua_State* L) {
  LuaClient* lc = CheckClient(L);
  lua_newtable(L);
  if (!lc->client) return 1;
  lua_Integer n = 0;
  posh_completion* c;
  while ((c = posh_next_completion(lc->client)) != NULL) {
    /* Build the table before freeing; lua_* may raise only on memory exhaustion, and then
     * this one completion is lost with the error (the Lua state is in trouble anyway). */
    PushCompletion(L, c);
    posh_completion_free(c);
    lua_rawseti(L, -2, ++n);
  }
  return 1;
}

static int l_tostring(lua_State* L) {
  LuaClient* lc = CheckClient(L);
  if (lc->client) {
    lua_pushfstring(L, "poshclient.client (fd %d, %d pending)", posh_client_fd(lc->client),
                    (int)posh_pending(lc->client));
  } else {
    lua_pushliteral(L, "poshclient.client (closed)");
  }
  return 1;
}

static int l_strerror(lua_State* L) {
  lua_pushstring(L, posh_strerror((int)luaL_checkinteger(L, 1)));
  return 1;
}

static const luaL_Reg kMethods[] = {
    {"getfd", l_getfd},     {"fd", l_getfd},      {"lookup", l_lookup},
    {"verify", l_verify},   {"cancel", l_cancel}, {"collect", l_collect},
    {"pending", l_pending}, {"close", l_close},   {NULL, NULL}};

static const luaL_Reg kMeta[] = {
    {"__gc", l_close}, {"__close", l_close}, {"__tostring", l_tostring}, {NULL, NULL}};

static const luaL_Reg kFunctions[] = {{"open", l_open}, {"strerror", l_strerror}, {NULL, NULL}};

static void SetCode(lua_State* L, const char* name, int value) {
  lua_pushinteger(L, value);
  lua_setfield(L, -2, name);
}

__attribute__((visibility("default"))) int luaopen_poshclient(lua_State* L) {
  luaL_newmetatable(L, CLIENT_MT);
  luaL_setfuncs(L, kMeta, 0);
  luaL_newlib(L, kMethods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);

  luaL_newlib(L, kFunctions);
  lua_createtable(L, 0, 7);
  SetCode(L, "OK", POSH_OK);
  SetCode(L, "NEGATIVE", POSH_NEGATIVE);
  SetCode(L, "UNDETERMINED", POSH_UNDETERMINED);
  SetCode(L, "EINVAL", POSH_EINVAL);
  SetCode(L, "EUNAVAILABLE", POSH_EUNAVAILABLE);
  SetCode(L, "EINTERNAL", POSH_EINTERNAL);
  SetCode(L, "ECANCELED", POSH_ECANCELED);
  lua_setfield(L, -2, "codes");
  lua_pushliteral(L, "0.1");
  lua_setfield(L, -2, "version");
  return 1;
}
