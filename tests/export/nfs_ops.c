// nfs_ops: one namespace operation over NFS with libnfs's synchronous
// API, for tests/export/export_test.sh (libnfs-utils 4.0 has no tool for
// rename, remove or mkdir).
//
//   nfs_ops nfs://SERVER/EXPORT?version=3|4 OP ARGS...
//     rename FROM TO | unlink PATH | mkdir PATH | rmdir PATH
//     stat PATH      (prints the size in bytes)
//
// Paths are relative to the export root. Exit 0 on success, 1 with
// libnfs's error on stderr, 2 on a usage error.
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>  // struct timeval, used by libnfs.h

#include <nfsc/libnfs.h>

static int usage(void) {
  fprintf(stderr,
          "usage: nfs_ops URL-of-export-root rename FROM TO | unlink PATH | mkdir PATH |"
          " rmdir PATH | stat PATH\n");
  return 2;
}

// "/"-rooted path under the export (libnfs resolves relative ones
// against its cwd, which is the root; absolute is explicit).
static char* rooted(const char* p) {
  size_t n = strlen(p);
  char* r = malloc(n + 2);
  if (r == NULL) exit(1);
  r[0] = '/';
  memcpy(r + 1, p[0] == '/' ? p + 1 : p, (p[0] == '/' ? n - 1 : n) + 1);
  return r;
}

int main(int argc, char** argv) {
  if (argc < 4) return usage();
  const char* op = argv[2];
  int nargs = strcmp(op, "rename") == 0 ? 2 : 1;
  if (strcmp(op, "rename") != 0 && strcmp(op, "unlink") != 0 && strcmp(op, "mkdir") != 0 &&
      strcmp(op, "rmdir") != 0 && strcmp(op, "stat") != 0)
    return usage();
  if (argc != 3 + nargs) return usage();

  struct nfs_context* nfs = nfs_init_context();
  if (nfs == NULL) {
    fprintf(stderr, "nfs_ops: nfs_init_context failed\n");
    return 1;
  }
  // Parses the query (version=...) into the context as well.
  struct nfs_url* url = nfs_parse_url_dir(nfs, argv[1]);
  if (url == NULL) {
    fprintf(stderr, "nfs_ops: %s: %s\n", argv[1], nfs_get_error(nfs));
    nfs_destroy_context(nfs);
    return 1;
  }
  int rc = 0;
  if (nfs_mount(nfs, url->server, url->path) != 0) {
    fprintf(stderr, "nfs_ops: mount %s:%s: %s\n", url->server, url->path, nfs_get_error(nfs));
    rc = 1;
    goto out;
  }
  char* a = rooted(argv[3]);
  char* b = nargs == 2 ? rooted(argv[4]) : NULL;
  int r;
  if (strcmp(op, "rename") == 0) {
    r = nfs_rename(nfs, a, b);
  } else if (strcmp(op, "unlink") == 0) {
    r = nfs_unlink(nfs, a);
  } else if (strcmp(op, "mkdir") == 0) {
    r = nfs_mkdir(nfs, a);
  } else if (strcmp(op, "rmdir") == 0) {
    r = nfs_rmdir(nfs, a);
  } else {
    struct nfs_stat_64 st;
    r = nfs_stat64(nfs, a, &st);
    if (r == 0) printf("%" PRIu64 "\n", (uint64_t)st.nfs_size);
  }
  if (r != 0) {
    fprintf(stderr, "nfs_ops: %s %s%s%s: %s\n", op, a, b ? " " : "", b ? b : "",
            nfs_get_error(nfs));
    rc = 1;
  }
  free(a);
  free(b);
  nfs_umount(nfs);
out:
  nfs_destroy_url(url);
  nfs_destroy_context(nfs);
  return rc;
}
