/* An LV2 plugin that crashes its host in instantiate (SIGSEGV), as broken plugins do:
   the plugin scan must list it as a failure and carry on. */
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
  const char* uri;
  void* (*instantiate)(const void*, double, const char*, const void* const*);
  void* rest[6];
} Descriptor;

static void* instantiate(const void* descriptor, double rate, const char* bundle, const void* const* features) {
  raise(SIGSEGV);
  return NULL;
}

static const Descriptor descriptor = {"urn:harmonic-test:crash", instantiate, {0}};

const Descriptor* lv2_descriptor(uint32_t index) { return index == 0 ? &descriptor : NULL; }
