/* SPDX-License-Identifier: MIT */
/*
 * The smallest real user of an installed libiommig: create a 64 MiB
 * machine, allocate a page, write it, free it, destroy the machine.
 * Prints "OK <version>" on success. With an argument, also checks that
 * the library loaded is that version.
 */
#include <stdio.h>
#include <string.h>

#include <iommig/iommig.h>

int main(int argc, char **argv)
{
	struct iom_machine_config cfg;
	struct iom_machine *m;
	struct iom_page *page;
	void *addr;
	int err;

	if (argc > 1 && strcmp(argv[1], iom_version_string()) != 0) {
		fprintf(stderr, "library is version %s, expected %s\n",
			iom_version_string(), argv[1]);
		return 1;
	}

	iom_machine_config_init(&cfg);
	cfg.mem_size = 64ULL << 20;
	err = iom_machine_create(&cfg, &m);
	if (err) {
		fprintf(stderr, "iom_machine_create: %d\n", err);
		return 1;
	}

	page = iom_alloc_pages(m, IOM_GFP_KERNEL, 0);
	if (!page) {
		fprintf(stderr, "iom_alloc_pages failed\n");
		iom_machine_destroy(m);
		return 1;
	}
	addr = iom_page_address(m, page);
	if (!addr || iom_virt_to_page(m, addr) != page) {
		fprintf(stderr, "page_address/virt_to_page disagree\n");
		iom_machine_destroy(m);
		return 1;
	}
	memset(addr, 0x5a, IOM_PAGE_SIZE);

	err = iom___free_pages(m, page, 0);
	if (err || iom_machine_bug_count(m)) {
		fprintf(stderr, "iom___free_pages: %d, bugs: %lu\n", err,
			iom_machine_bug_count(m));
		iom_machine_destroy(m);
		return 1;
	}
	iom_machine_destroy(m);
	printf("OK %s\n", iom_version_string());
	return 0;
}
