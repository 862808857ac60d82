// A boot sector that makes the firmware's own disk driver do real I/O: it
// reads `sectors` sectors from LBA `start` through int 13h (extended read,
// `chunk_sectors` at a time into a 32 KiB buffer), sums them (rotate-and-add
// over dwords, order-sensitive), and compares with `expected`; `rounds`
// times. A sector is 4 << `shift` bytes: 512 on a disk, 2048 when it is an El
// Torito boot image on a CD. The test patches the parameters at 0x1F0 and
// reports through the debug-exit port:
//   0x10 all rounds matched, 0x11 checksum mismatch, 0x12 int 13h error.
// Progress and failures are printed on the firmware's debug console (0x402).
.code16
.set BUFFER_SEGMENT, 0x1000
.set DEBUG_EXIT, 0x501
.set DEBUG_CONSOLE, 0x402

.globl _start
_start:
  cli
  xor %ax, %ax
  mov %ax, %ds
  mov %ax, %es
  mov %ax, %ss
  mov $0x7c00, %sp
  ljmp $0, $main
main:
  sti
  mov %dl, drive
round:
  movl $0, sum
  movl start, %eax
  movl %eax, dap_lba
  mov sectors, %ax
  mov %ax, left
next_chunk:
  mov left, %ax
  test %ax, %ax
  jz round_done
  movzbw chunk_sectors, %bx
  cmp %bx, %ax
  jbe 1f
  mov %bx, %ax
1:
  mov %ax, dap_count
  mov %ax, count
  mov $0x42, %ah
  mov drive, %dl
  mov $dap, %si
  int $0x13
  jc read_error
  // Sum count << shift dwords of the buffer.
  mov count, %ax
  mov shift, %cl
  shl %cl, %ax
  mov %ax, %cx
  mov $BUFFER_SEGMENT, %ax
  mov %ax, %es
  xor %si, %si
  movl sum, %ebx
2:
  movl %es:(%si), %eax
  roll $1, %ebx
  addl %eax, %ebx
  add $4, %si
  loop 2b
  movl %ebx, sum
  mov count, %ax
  add %ax, dap_lba
  sub %ax, left
  jmp next_chunk
round_done:
  movl sum, %eax
  cmpl expected, %eax
  jne mismatch
  mov $msg_round, %si
  call print
  decw rounds
  jnz round
  mov $0x10, %al
  jmp finish
mismatch:
  mov $msg_mismatch, %si
  call print
  movl sum, %eax
  call print_hex
  mov $0x11, %al
  jmp finish
read_error:
  mov %ah, %bl
  mov $msg_error, %si
  call print
  movzx %bl, %eax
  call print_hex
  mov $0x12, %al
finish:
  mov $DEBUG_EXIT, %dx
  out %al, %dx
3:
  hlt
  jmp 3b

// Prints the NUL-terminated string at %si on the debug console.
print:
  mov $DEBUG_CONSOLE, %dx
4:
  lodsb
  test %al, %al
  jz 5f
  out %al, %dx
  jmp 4b
5:
  ret

// Prints %eax as eight hex digits and a newline.
print_hex:
  mov $DEBUG_CONSOLE, %dx
  mov $8, %cx
6:
  roll $4, %eax
  push %ax
  and $0xf, %al
  add $'0', %al
  cmp $'9', %al
  jbe 7f
  add $('a' - '9' - 1), %al
7:
  out %al, %dx
  pop %ax
  loop 6b
  mov $'\n', %al
  out %al, %dx
  ret

msg_round: .asciz "disk-check: round ok\n"
msg_mismatch: .asciz "disk-check: checksum "
msg_error: .asciz "disk-check: int 13h error "

.balign 4
dap:
  .byte 16, 0
dap_count: .word 0
  .word 0, BUFFER_SEGMENT
dap_lba: .quad 0
sum: .long 0
drive: .byte 0
.balign 2
left: .word 0
count: .word 0

// Patched by the test.
.org 0x1f0
sectors: .word 1
rounds: .word 1
expected: .long 0
start: .long 1
shift: .byte 7
chunk_sectors: .byte 64
.org 510
.byte 0x55, 0xaa
