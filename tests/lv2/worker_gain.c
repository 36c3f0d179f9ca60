/* An LV2 gain whose gain arrives through the LV2 worker: on its first run it schedules
   the "gain" port's value as work; the work is answered with the same bytes, and the
   response sets the gain. Until the response is delivered it outputs silence, so its
   output shows whether the host runs the worker (schedule, work, response). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct { const char* uri; void* data; } Feature;
typedef struct { void* handle; int (*schedule_work)(void*, uint32_t, const void*); } Schedule;
typedef int (*Respond)(void*, uint32_t, const void*);
typedef struct {
  int (*work)(void*, Respond, void*, uint32_t, const void*);
  int (*work_response)(void*, uint32_t, const void*);
  int (*end_run)(void*);
} WorkerInterface;
typedef struct {
  const char* uri;
  void* (*instantiate)(const void*, double, const char*, const Feature* const*);
  void (*connect_port)(void*, uint32_t, void*);
  void (*activate)(void*);
  void (*run)(void*, uint32_t);
  void (*deactivate)(void*);
  void (*cleanup)(void*);
  const void* (*extension_data)(const char*);
} Descriptor;

typedef struct {
  const Schedule* schedule;
  const float* in;
  float* out;
  const float* gain_port;
  float gain;
  int scheduled;
} Plugin;

static void* instantiate(const void* descriptor, double rate, const char* bundle, const Feature* const* features) {
  const Schedule* schedule = NULL;
  for (int i = 0; features[i]; ++i)
    if (!strcmp(features[i]->uri, "http://lv2plug.in/ns/ext/worker#schedule")) schedule = features[i]->data;
  if (!schedule) return NULL;
  Plugin* plugin = calloc(1, sizeof(Plugin));
  plugin->schedule = schedule;
  return plugin;
}

static void connect_port(void* handle, uint32_t port, void* data) {
  Plugin* plugin = handle;
  if (port == 0) plugin->in = data;
  else if (port == 1) plugin->out = data;
  else plugin->gain_port = data;
}

static void activate(void* handle) {
  Plugin* plugin = handle;
  plugin->gain = 0.0f;
  plugin->scheduled = 0;
}

static void run(void* handle, uint32_t frames) {
  Plugin* plugin = handle;
  if (!plugin->scheduled) {
    float gain = *plugin->gain_port;
    plugin->schedule->schedule_work(plugin->schedule->handle, sizeof gain, &gain);
    plugin->scheduled = 1;
  }
  for (uint32_t i = 0; i < frames; ++i) plugin->out[i] = plugin->in[i] * plugin->gain;
}

static void cleanup(void* handle) { free(handle); }

static int work(void* handle, Respond respond, void* respond_handle, uint32_t size, const void* data) {
  return respond(respond_handle, size, data);
}

static int work_response(void* handle, uint32_t size, const void* data) {
  if (size == sizeof(float)) memcpy(&((Plugin*)handle)->gain, data, sizeof(float));
  return 0;
}

static int end_run(void* handle) { return 0; }

static const WorkerInterface worker = {work, work_response, end_run};

static const void* extension_data(const char* uri) {
  return strcmp(uri, "http://lv2plug.in/ns/ext/worker#interface") ? NULL : &worker;
}

static const Descriptor descriptor = {"urn:harmonic-test:worker-gain", instantiate, connect_port, activate, run,
                                      NULL, cleanup, extension_data};

const Descriptor* lv2_descriptor(uint32_t index) { return index == 0 ? &descriptor : NULL; }
