// nfs_load: a bounded NFS load generator on libnfs's synchronous API
// (docs/benchmarks.md, "NFS through Ganesha"). N client processes, each
// with its own nfs_context (its own TCP connection) and its own file,
// run one operation in a loop for S seconds and the parent prints one
// TSV line: op, clients, ops/s, MB/s, mean and p99 latency in µs.
//
//   nfs_load --server ADDR --export /path --clients N --seconds S
//            --op randread4k|randwrite4k|seqread1m|seqwrite1m|create
//            [--file-size 64M] [--version 3|4] [--header]
//
// Setup, not timed: each client mounts, makes sure its file
// nfs_load.<i>.dat is file-size bytes long (written once, in 1 MiB
// writes; kept for the next run) and opens it; for `create` it makes an
// empty directory nfs_load.<pid>.<i>/ of its own. Then all clients start
// together (a pipe closed by the parent) and each stops after S seconds.
//
// Writes are NFSv3 UNSTABLE writes (libnfs's default) and every client
// ends with one nfs_fsync (COMMIT), inside the timed window. `create` is
// CREATE + close of an empty file. NFSv3 is the default: libnfs 4.0's
// NFSv4 client cannot send a WRITE of more than about 3.9 KB.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <nfsc/libnfs.h>

enum op { RANDREAD4K, RANDWRITE4K, SEQREAD1M, SEQWRITE1M, CREATE };
static const char* const op_names[] = {"randread4k", "randwrite4k", "seqread1m", "seqwrite1m",
                                       "create"};

// Latencies kept per client; past this many, the rest are counted but
// not kept (p99 then comes from the first kMaxSamples).
#define kMaxSamples (1u << 20)

// One client's result, in memory shared with the parent.
struct client_result {
  int ok;              // 1 once the client finished without error
  uint64_t ops;
  uint64_t bytes;
  double seconds;      // its own timed window
  double lat_sum_us;
  uint32_t nsamples;
  uint32_t samples[kMaxSamples];  // µs
};

struct options {
  const char* server;
  const char* export_path;
  int clients;
  double seconds;
  enum op op;
  uint64_t file_size;
  int version;
  int header;
};

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t parse_size(const char* s) {
  char* end;
  uint64_t v = strtoull(s, &end, 10);
  switch (*end) {
    case 'k': case 'K': v <<= 10; break;
    case 'm': case 'M': v <<= 20; break;
    case 'g': case 'G': v <<= 30; break;
    case '\0': break;
    default: fprintf(stderr, "nfs_load: bad size '%s'\n", s); exit(2);
  }
  return v;
}

static void usage(FILE* f) {
  fprintf(f,
          "usage: nfs_load --server ADDR --export /path --clients N --seconds S\n"
          "                --op randread4k|randwrite4k|seqread1m|seqwrite1m|create\n"
          "                [--file-size 64M] [--version 3|4] [--header]\n"
          "prints: op clients ops_per_s MB_per_s mean_us p99_us (TSV)\n");
}

// xorshift64*: a cheap per-client random offset source.
static uint64_t rnd(uint64_t* s) {
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return *s * 2685821657736338717ull;
}

static int full_pwrite(struct nfs_context* nfs, struct nfsfh* fh, uint64_t off, uint64_t len,
                       const char* buf) {
  while (len > 0) {
    int n = nfs_pwrite(nfs, fh, off, len, buf);
    if (n <= 0) return n < 0 ? n : -EIO;
    off += (uint64_t)n, len -= (uint64_t)n, buf += n;
  }
  return 0;
}

static int full_pread(struct nfs_context* nfs, struct nfsfh* fh, uint64_t off, uint64_t len,
                      char* buf) {
  while (len > 0) {
    int n = nfs_pread(nfs, fh, off, len, buf);
    if (n <= 0) return n < 0 ? n : -EIO;  // 0: short file
    off += (uint64_t)n, len -= (uint64_t)n, buf += n;
  }
  return 0;
}

// Makes sure `path` holds at least `size` bytes (written once, in 1 MiB
// writes of a non-zero pattern, then committed).
static int fill_file(struct nfs_context* nfs, const char* path, uint64_t size, char* buf) {
  struct nfs_stat_64 st;
  if (nfs_stat64(nfs, path, &st) == 0 && st.nfs_size >= size) return 0;
  struct nfsfh* fh;
  if (nfs_open2(nfs, path, O_WRONLY | O_CREAT, 0644, &fh) != 0) return -1;
  const uint64_t chunk = 1 << 20;
  int rc = 0;
  for (uint64_t off = 0; off < size && rc == 0; off += chunk)
    rc = full_pwrite(nfs, fh, off, size - off < chunk ? size - off : chunk, buf);
  if (rc == 0) rc = nfs_fsync(nfs, fh);
  nfs_close(nfs, fh);
  return rc;
}

// One client: setup, tell the parent (ready), wait for the start (EOF on
// go), run for o->seconds. Returns the exit status.
static int run_client(const struct options* o, int index, int ready_fd, int go_fd,
                      struct client_result* r) {
  struct nfs_context* nfs = nfs_init_context();
  if (!nfs) {
    fprintf(stderr, "nfs_load: client %d: nfs_init_context failed\n", index);
    return 1;
  }
  nfs_set_version(nfs, o->version);
  if (nfs_mount(nfs, o->server, o->export_path) != 0) {
    fprintf(stderr, "nfs_load: client %d: mount %s:%s: %s\n", index, o->server, o->export_path,
            nfs_get_error(nfs));
    return 1;
  }
  const uint64_t io = (o->op == RANDREAD4K || o->op == RANDWRITE4K) ? 4096 : (1u << 20);
  char* buf = malloc(1u << 20);
  memset(buf, 'a' + index % 26, 1u << 20);
  char path[256];
  struct nfsfh* fh = NULL;
  if (o->op == CREATE) {
    snprintf(path, sizeof path, "/nfs_load.%d.%d", (int)getppid(), index);
    if (nfs_mkdir(nfs, path) != 0) {
      fprintf(stderr, "nfs_load: client %d: mkdir %s: %s\n", index, path, nfs_get_error(nfs));
      return 1;
    }
  } else {
    snprintf(path, sizeof path, "/nfs_load.%d.dat", index);
    if (fill_file(nfs, path, o->file_size, buf) != 0) {
      fprintf(stderr, "nfs_load: client %d: fill %s: %s\n", index, path, nfs_get_error(nfs));
      return 1;
    }
    const int writes = o->op == RANDWRITE4K || o->op == SEQWRITE1M;
    if (nfs_open(nfs, path, writes ? O_WRONLY : O_RDONLY, &fh) != 0) {
      fprintf(stderr, "nfs_load: client %d: open %s: %s\n", index, path, nfs_get_error(nfs));
      return 1;
    }
  }

  char c = 'r';
  if (write(ready_fd, &c, 1) != 1) return 1;
  close(ready_fd);
  while (read(go_fd, &c, 1) > 0) {
  }
  close(go_fd);

  uint64_t seed = 0x9e3779b97f4a7c15ull * (uint64_t)(index + 1);
  const uint64_t blocks = o->file_size / io;
  uint64_t seq = 0;
  const double start = now_s(), end = start + o->seconds;
  double t = start;
  int rc = 0;
  while (t < end) {
    int e = 0;
    uint64_t off = 0;
    char name[300];
    switch (o->op) {
      case RANDREAD4K:
        off = (rnd(&seed) % blocks) * io;
        e = full_pread(nfs, fh, off, io, buf);
        break;
      case RANDWRITE4K:
        off = (rnd(&seed) % blocks) * io;
        e = full_pwrite(nfs, fh, off, io, buf);
        break;
      case SEQREAD1M:
        off = (seq++ % blocks) * io;
        e = full_pread(nfs, fh, off, io, buf);
        break;
      case SEQWRITE1M:
        off = (seq++ % blocks) * io;
        e = full_pwrite(nfs, fh, off, io, buf);
        break;
      case CREATE: {
        struct nfsfh* cfh;
        snprintf(name, sizeof name, "%s/f%" PRIu64, path, seq++);
        e = nfs_creat(nfs, name, 0644, &cfh);
        if (e == 0) e = nfs_close(nfs, cfh);
        break;
      }
    }
    if (e != 0) {
      fprintf(stderr, "nfs_load: client %d: %s at %" PRIu64 ": %s\n", index, op_names[o->op], off,
              nfs_get_error(nfs));
      rc = 1;
      break;
    }
    const double t2 = now_s();
    const double us = (t2 - t) * 1e6;
    r->lat_sum_us += us;
    if (r->nsamples < kMaxSamples) r->samples[r->nsamples++] = (uint32_t)(us + 0.5);
    r->ops++;
    r->bytes += o->op == CREATE ? 0 : io;
    t = t2;
  }
  // Unstable writes are acknowledged only once committed: the COMMIT is
  // part of the timed window.
  if (rc == 0 && fh && (o->op == RANDWRITE4K || o->op == SEQWRITE1M) && nfs_fsync(nfs, fh) != 0) {
    fprintf(stderr, "nfs_load: client %d: fsync: %s\n", index, nfs_get_error(nfs));
    rc = 1;
  }
  r->seconds = now_s() - start;
  if (fh) nfs_close(nfs, fh);
  nfs_destroy_context(nfs);
  free(buf);
  r->ok = rc == 0;
  return rc;
}

static int cmp_u32(const void* a, const void* b) {
  uint32_t x = *(const uint32_t*)a, y = *(const uint32_t*)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char** argv) {
  struct options o = {.clients = 1, .seconds = 5, .op = RANDREAD4K, .file_size = 64u << 20,
                      .version = 3};
  const char* op = NULL;
  static const struct option longopts[] = {
      {"server", required_argument, 0, 's'}, {"export", required_argument, 0, 'e'},
      {"clients", required_argument, 0, 'c'}, {"seconds", required_argument, 0, 't'},
      {"op", required_argument, 0, 'o'},     {"file-size", required_argument, 0, 'f'},
      {"version", required_argument, 0, 'v'}, {"header", no_argument, 0, 'H'},
      {"help", no_argument, 0, 'h'},         {0, 0, 0, 0}};
  int ch;
  while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
    switch (ch) {
      case 's': o.server = optarg; break;
      case 'e': o.export_path = optarg; break;
      case 'c': o.clients = atoi(optarg); break;
      case 't': o.seconds = atof(optarg); break;
      case 'o': op = optarg; break;
      case 'f': o.file_size = parse_size(optarg); break;
      case 'v': o.version = atoi(optarg); break;
      case 'H': o.header = 1; break;
      case 'h': usage(stdout); return 0;
      default: usage(stderr); return 2;
    }
  }
  int found = 0;
  for (int i = 0; op && i < (int)(sizeof op_names / sizeof *op_names); ++i)
    if (strcmp(op, op_names[i]) == 0) o.op = (enum op)i, found = 1;
  if (!o.server || !o.export_path || !found || o.clients < 1 || o.clients > 256 ||
      o.seconds <= 0 || o.seconds > 3600 || o.file_size < (1u << 20) ||
      (o.version != 3 && o.version != 4)) {
    usage(stderr);
    return 2;
  }

  const size_t bytes = sizeof(struct client_result) * (size_t)o.clients;
  struct client_result* res =
      mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (res == MAP_FAILED) {
    perror("nfs_load: mmap");
    return 1;
  }
  int ready[2], go[2];
  if (pipe(ready) != 0 || pipe(go) != 0) {
    perror("nfs_load: pipe");
    return 1;
  }
  pid_t* pids = calloc((size_t)o.clients, sizeof *pids);
  for (int i = 0; i < o.clients; ++i) {
    pids[i] = fork();
    if (pids[i] < 0) {
      perror("nfs_load: fork");
      return 1;
    }
    if (pids[i] == 0) {
      close(ready[0]);
      close(go[1]);
      _exit(run_client(&o, i, ready[1], go[0], &res[i]));
    }
  }
  close(ready[1]);
  close(go[0]);
  // Every client ready (or dead: then read sees EOF early), then go.
  int nready = 0;
  char c;
  while (nready < o.clients && read(ready[0], &c, 1) == 1) ++nready;
  close(go[1]);
  int failed = nready < o.clients;
  for (int i = 0; i < o.clients; ++i) {
    int st;
    if (waitpid(pids[i], &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0 || !res[i].ok)
      failed = 1;
  }
  if (failed) {
    fprintf(stderr, "nfs_load: %s with %d clients: a client failed\n", op_names[o.op], o.clients);
    return 1;
  }

  // Throughput: the sum of each client's rate over its own window.
  double ops_s = 0, mb_s = 0, lat_sum = 0;
  uint64_t ops = 0, nsamples = 0;
  for (int i = 0; i < o.clients; ++i) {
    ops_s += (double)res[i].ops / res[i].seconds;
    mb_s += (double)res[i].bytes / res[i].seconds / 1e6;
    lat_sum += res[i].lat_sum_us;
    ops += res[i].ops;
    nsamples += res[i].nsamples;
  }
  uint32_t* all = malloc(sizeof(uint32_t) * (nsamples ? nsamples : 1));
  uint64_t k = 0;
  for (int i = 0; i < o.clients; ++i)
    for (uint32_t j = 0; j < res[i].nsamples; ++j) all[k++] = res[i].samples[j];
  qsort(all, nsamples, sizeof *all, cmp_u32);
  const uint32_t p99 = nsamples ? all[nsamples * 99 / 100] : 0;  // index < nsamples
  if (o.header) printf("op\tclients\tops_per_s\tMB_per_s\tmean_us\tp99_us\n");
  printf("%s\t%d\t%.0f\t%.1f\t%.0f\t%u\n", op_names[o.op], o.clients, ops_s, mb_s,
         ops ? lat_sum / (double)ops : 0.0, p99);
  free(all);
  free(pids);
  munmap(res, bytes);
  return 0;
}
