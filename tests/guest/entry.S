/*
 * Test guest entry: a PVH kernel. The hypervisor (or QEMU) starts us in 32-bit
 * flat protected mode with paging off and %ebx = hvm_start_info. A multiboot
 * loader (GRUB) starts us the same way at multiboot_entry with %ebx = its
 * multiboot info, which we turn into an hvm_start_info first. We switch to
 * long mode on static page tables (2 MiB pages: the emulating KVM on our build
 * machines faults on 1 GiB pages) and call guest_main(start_info).
 *
 * Application processors arrive at the real-mode trampoline below (copied to
 * AP_TRAMPOLINE by the BSP), take the same 32 -> 64-bit path, and call ap_main.
 */
#define AP_TRAMPOLINE 0x8000
#define STACK_SIZE 16384
#define MAX_CPUS 64
#define DEBUG_EXIT_PORT 0x501

/* XEN_ELFNOTE_PHYS32_ENTRY (18): where a PVH loader starts us. */
	.section .note.pvh, "a", @note
	.p2align 2
	.long 4
	.long 4
	.long 18
	.asciz "Xen"
	.long pvh_entry

/* The multiboot (v1) header: in the file's first 8 KiB (the linker script
 * puts it first); flags: memory information (bit 1). */
#define MULTIBOOT_MAGIC 0x1badb002
#define MULTIBOOT_LOADER_MAGIC 0x2badb002
#define MULTIBOOT_FLAGS 0x2
#define HVM_START_MAGIC 0x336ec578
#define MAX_MEMMAP 32
	.section .multiboot, "a"
	.p2align 2
	.long MULTIBOOT_MAGIC
	.long MULTIBOOT_FLAGS
	.long -(MULTIBOOT_MAGIC + MULTIBOOT_FLAGS)

	.code32
	.section .text.entry, "ax"
/* Multiboot: cmdline (info flag 2) and memory map (flag 6) into an
 * hvm_start_info; the RSDP found where firmware leaves it (0xE0000-0xFFFFF). */
	.globl multiboot_entry
multiboot_entry:
	cli
	cmpl $MULTIBOOT_LOADER_MAGIC, %eax
	jne 9f
	movl $mb_start_info, %edi
	movl $HVM_START_MAGIC, 0(%edi)
	movl $1, 4(%edi)
	testl $(1 << 2), (%ebx)
	jz 1f
	movl 16(%ebx), %eax
	movl %eax, 24(%edi)          /* cmdline_paddr */
1:	movl $mb_memmap, 40(%edi)    /* memmap_paddr */
	testl $(1 << 6), (%ebx)
	jz 4f
	movl 48(%ebx), %esi          /* mmap_addr */
	movl 44(%ebx), %ecx
	addl %esi, %ecx              /* its end */
	movl $mb_memmap, %edx
2:	cmpl %ecx, %esi
	jae 4f
	cmpl $MAX_MEMMAP, 48(%edi)
	jae 4f
	movl 4(%esi), %eax           /* base */
	movl %eax, 0(%edx)
	movl 8(%esi), %eax
	movl %eax, 4(%edx)
	movl 12(%esi), %eax          /* length */
	movl %eax, 8(%edx)
	movl 16(%esi), %eax
	movl %eax, 12(%edx)
	movl 20(%esi), %eax          /* type */
	movl %eax, 16(%edx)
	incl 48(%edi)                /* memmap_entries */
	addl $24, %edx
	addl (%esi), %esi            /* size excludes its own field */
	addl $4, %esi
	jmp 2b
4:	movl $0xe0000, %esi
5:	cmpl $0x20445352, (%esi)     /* "RSD " */
	jne 6f
	cmpl $0x20525450, 4(%esi)    /* "PTR " */
	je 7f
6:	addl $16, %esi
	cmpl $0x100000, %esi
	jb 5b
	xorl %esi, %esi
7:	movl %esi, 32(%edi)          /* rsdp_paddr */
	movl %edi, %ebx
	jmp pvh_entry
9:	hlt
	jmp 9b

	.globl pvh_entry
pvh_entry:
	cli
	/* "exit..." as the command line: report at once (the boot benchmark). */
	movl 24(%ebx), %eax         /* cmdline_paddr */
	cmpl $0x74697865, (%eax)
	jne 1f
	movw $DEBUG_EXIT_PORT, %dx
	xorl %eax, %eax
	outb %al, %dx
1:	movl %ebx, %edi
	movl $bsp_far_pointer, %esi
	jmp enter_long_mode

/* Common 32 -> 64-bit switch; continues at the far pointer in %esi. Uses no
 * stack, so APs can take it before they have one. */
enter_long_mode:
	lgdt gdt_pointer
	movl %cr4, %eax
	orl $0x20, %eax            /* PAE */
	movl %eax, %cr4
	movl $pml4, %eax
	movl %eax, %cr3
	movl $0xc0000080, %ecx      /* EFER */
	rdmsr
	orl $0x100, %eax           /* LME */
	wrmsr
	movl %cr0, %eax
	orl $0x80000001, %eax      /* PG | PE */
	movl %eax, %cr0
	ljmp *(%esi)

	.code64
bsp_entry64:
	movw $0x10, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	movw %ax, %fs
	movw %ax, %gs
	movl %edi, %edi             /* start_info, zero-extended: first argument. */
	movq $bsp_stack_top, %rsp
	call guest_main
2:	cli
	hlt
	jmp 2b

ap_entry64:
	movw $0x10, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	movw %ax, %fs
	movw %ax, %gs
	movl $1, %eax
	lock xaddl %eax, ap_next_index
	movl %eax, %edi             /* ap_main(index) */
	incl %eax
	imull $STACK_SIZE, %eax
	leaq ap_stacks(%rip), %rsp
	addq %rax, %rsp
	call ap_main
3:	cli
	hlt
	jmp 3b

	.code32
ap_entry32:
	movw $0x10, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	movl $ap_far_pointer, %esi
	jmp enter_long_mode

/* Real-mode AP start code, position-dependent on AP_TRAMPOLINE. */
	.code16
	.globl ap_trampoline_start, ap_trampoline_end
ap_trampoline_start:
	cli
	xorw %ax, %ax
	movw %ax, %ds
	lgdtl AP_TRAMPOLINE + (trampoline_gdt_pointer - ap_trampoline_start)
	movl %cr0, %eax
	orl $1, %eax
	movl %eax, %cr0
	ljmpl $0x18, $(AP_TRAMPOLINE + (trampoline_protected - ap_trampoline_start))
	.code32
trampoline_protected:
	movl $ap_entry32, %eax
	jmp *%eax
	.p2align 2
trampoline_gdt_pointer:
	.word gdt_end - gdt - 1
	.long gdt
ap_trampoline_end:

	.section .bss
	.p2align 3
mb_start_info:
	.skip 56
mb_memmap:
	.skip 24 * MAX_MEMMAP

	.section .rodata
	.p2align 3
gdt:
	.quad 0
	.quad 0x00af9a000000ffff    /* 0x08: 64-bit code */
	.quad 0x00cf92000000ffff    /* 0x10: data */
	.quad 0x00cf9a000000ffff    /* 0x18: 32-bit code */
gdt_end:
gdt_pointer:
	.word gdt_end - gdt - 1
	.quad gdt
bsp_far_pointer:
	.long bsp_entry64
	.word 0x08
ap_far_pointer:
	.long ap_entry64
	.word 0x08

	.data
	.globl ap_next_index
	.p2align 2
ap_next_index:
	.long 0

/* Identity map of the first 4 GiB (RAM, PCI hole, ECAM, LAPIC, IOAPIC). */
	.section .data.pagetables, "aw"
	.p2align 12
pml4:
	.quad pdpt + 0x3
	.fill 511, 8, 0
pdpt:
	.quad page_directories + 0x3
	.quad page_directories + 0x1003
	.quad page_directories + 0x2003
	.quad page_directories + 0x3003
	.fill 508, 8, 0
page_directories:
	.set page, 0
	.rept 2048
	.quad (page << 21) | 0x83
	.set page, page + 1
	.endr

	.bss
	.p2align 12
	.globl ap_stacks
ap_stacks:
	.skip STACK_SIZE * (MAX_CPUS + 1)
	.skip STACK_SIZE
bsp_stack_top:
	.section .note.GNU-stack, "", @progbits
